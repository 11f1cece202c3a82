package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/rackboot/rackboot/profiles"
)

// fakePower records what the API asks of the appliance's power control.
type fakePower struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakePower) Run(_ context.Context, hosts []*profiles.Host, action string, netboot bool, opt PowerOptions, by string, _ func(PowerResult)) []PowerResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PowerResult
	for _, h := range hosts {
		f.calls = append(f.calls, action+" "+profiles.MACKey(h.MAC))
		out = append(out, PowerResult{MAC: profiles.MACKey(h.MAC), Hostname: h.Hostname, Action: action, NetBoot: netboot, State: "on", OK: true})
	}
	return out
}

// TestPowerRequests: what POST /api/power refuses, before any BMC is
// asked, and what it does with a selection.
func TestPowerRequests(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name string
		body string
		code int
		want string
	}{
		{"no power control", `{"action":"status","macs":["52:54:00:00:00:01"]}`, http.StatusServiceUnavailable, "power control is not configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(http.MethodPost, "/api/power", map[string]string{"Authorization": "Bearer " + adminTok}, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s; want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	fp := &fakePower{}
	e.srv.Power = fp
	for _, tc := range []struct {
		name string
		body string
		code int
		want string
	}{
		{"unknown action", `{"action":"reboot","macs":["52:54:00:00:00:01"]}`, http.StatusBadRequest, "want status, on, off or cycle"},
		{"netboot with off", `{"action":"off","netboot":true,"macs":["52:54:00:00:00:01"]}`, http.StatusBadRequest, "netboot goes with on or cycle"},
		{"no hosts", `{"action":"on"}`, http.StatusBadRequest, "name hosts"},
		{"empty selector", `{"action":"on","selector":{}}`, http.StatusBadRequest, "name hosts"},
		{"bad mac", `{"action":"on","macs":["nope"]}`, http.StatusBadRequest, "not a MAC address"},
		{"stagger too long", `{"action":"on","macs":["52:54:00:00:00:01"],"stagger_ms":3600000}`, http.StatusBadRequest, "stagger_ms"},
		{"unknown field", `{"action":"on","macs":["52:54:00:00:00:01"],"password":"x"}`, http.StatusBadRequest, "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(http.MethodPost, "/api/power", map[string]string{"Authorization": "Bearer " + adminTok}, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s; want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	if len(fp.calls) != 0 {
		t.Errorf("refused requests reached the BMCs: %v", fp.calls)
	}

	// A selection, a MAC outside the profiles skipped, a dry run that
	// asks no BMC.
	sel := fleetMACs(e.set, map[string]string{"rack": "r1"})
	var dry PowerResponse
	if code := e.admin(http.MethodPost, "/api/power", PowerRequest{Action: "cycle", Selector: map[string]string{"rack": "r1"}, DryRun: true}, &dry); code != http.StatusOK || len(dry.Results) != len(sel) || len(fp.calls) != 0 {
		t.Fatalf("dry run: %d, %d results for %d hosts, calls %v", code, len(dry.Results), len(sel), fp.calls)
	}
	var resp PowerResponse
	req := PowerRequest{Action: "cycle", NetBoot: true, Selector: map[string]string{"rack": "r1"}, MACs: []string{"02:00:00:00:00:99"}}
	if code := e.admin(http.MethodPost, "/api/power", req, &resp); code != http.StatusOK {
		t.Fatalf("power cycle: %d", code)
	}
	if len(resp.Results) != len(sel) || len(fp.calls) != len(sel) || len(resp.Skipped) != 1 || resp.Skipped[0].MAC != "02:00:00:00:00:99" {
		t.Errorf("results %+v skipped %+v calls %v; want %d hosts and the stranger skipped", resp.Results, resp.Skipped, fp.calls, len(sel))
	}
}
