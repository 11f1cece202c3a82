package power_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rackboot/rackboot/power"
	"github.com/rackboot/rackboot/power/powertest"
)

const (
	user     = "admin"
	password = "s3cret-Pw%1"
)

// fast is a Config for loopback doubles.
var fast = power.Config{Timeout: 2 * time.Second, PollInterval: 10 * time.Millisecond}

func redfishDouble(t *testing.T, machines map[string]powertest.Machine) (*powertest.RedfishBMC, *httptest.Server) {
	t.Helper()
	b := &powertest.RedfishBMC{User: user, Password: password, Systems: machines}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv
}

func newController(t *testing.T, tg power.Target, cfg power.Config) power.Controller {
	t.Helper()
	c, err := power.New(tg, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func ops(calls []powertest.Call) []powertest.Call {
	out := make([]powertest.Call, len(calls))
	for i, c := range calls {
		out[i] = powertest.Call{Op: c.Op, NetBoot: c.NetBoot}
	}
	return out
}

// TestRedfishSemantics runs Do's actions against the Redfish double and
// checks what the machine saw.
func TestRedfishSemantics(t *testing.T) {
	tests := []struct {
		name      string
		on        bool
		resets    []string // nil: the double's default
		action    power.Action
		netboot   bool
		wantState power.State
		wantCalls []powertest.Call
	}{
		{name: "status on", on: true, action: power.ActionStatus, wantState: power.StateOn, wantCalls: []powertest.Call{}},
		{name: "status off", action: power.ActionStatus, wantState: power.StateOff, wantCalls: []powertest.Call{}},
		{name: "on when off", action: power.ActionOn, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "on"}}},
		{name: "on when on is a no-op", on: true, action: power.ActionOn, wantState: power.StateOn, wantCalls: []powertest.Call{}},
		{name: "off when on", on: true, action: power.ActionOff, wantState: power.StateOff, wantCalls: []powertest.Call{{Op: "off"}}},
		{name: "off when off is a no-op", action: power.ActionOff, wantState: power.StateOff, wantCalls: []powertest.Call{}},
		{name: "cycle when on", on: true, action: power.ActionCycle, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "reset"}}},
		{name: "cycle when off powers on", action: power.ActionCycle, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "on"}}},
		{name: "netboot and cycle when on", on: true, action: power.ActionCycle, netboot: true, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "reset", NetBoot: true}}},
		{name: "netboot and on when off", action: power.ActionOn, netboot: true, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "on", NetBoot: true}}},
		{name: "cycle without PowerCycle uses ForceRestart", on: true, resets: []string{"On", "ForceOff", "ForceRestart"}, action: power.ActionCycle, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "reset"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := powertest.NewFakeMachine(tt.on)
			b, srv := redfishDouble(t, map[string]powertest.Machine{"node1": m})
			b.ResetTypes = tt.resets
			c := newController(t, power.Target{Protocol: "redfish", Address: srv.URL, Username: user, Password: password}, fast)
			state, err := power.Do(context.Background(), c, tt.action, tt.netboot, fast)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if state != tt.wantState {
				t.Errorf("state %s, want %s", state, tt.wantState)
			}
			if diff := cmp.Diff(tt.wantCalls, ops(m.Calls()), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("machine calls (-want +got):\n%s", diff)
			}
			if b.NetBootPending("node1") {
				t.Error("a network boot is still pending after the power action")
			}
			if n := b.Sessions(); n != 0 {
				t.Errorf("%d sessions left open", n)
			}
			if tt.resets != nil && tt.action == power.ActionCycle {
				if log := b.Log(); len(log) != 1 || log[0].Action != "ForceRestart" {
					t.Errorf("log %+v, want one ForceRestart", log)
				}
			}
		})
	}
}

// TestRedfishSystemChoice: by Id, the only one, or an error naming them.
func TestRedfishSystemChoice(t *testing.T) {
	a, b := powertest.NewFakeMachine(true), powertest.NewFakeMachine(false)
	_, srv := redfishDouble(t, map[string]powertest.Machine{"a": a, "b": b})
	tg := power.Target{Protocol: "redfish", Address: srv.URL, Username: user, Password: password}
	ctx := context.Background()

	tg.System = "b"
	if st, err := newController(t, tg, fast).Status(ctx); err != nil || st != power.StateOff {
		t.Errorf("system b: %s, %v; want off", st, err)
	}
	tg.System = ""
	_, err := newController(t, tg, fast).Status(ctx)
	if power.KindOf(err) != power.KindConfig || !strings.Contains(err.Error(), "a, b") {
		t.Errorf("no system with two: %v, want a config error naming a, b", err)
	}
	tg.System = "c"
	if _, err := newController(t, tg, fast).Status(ctx); power.KindOf(err) != power.KindConfig {
		t.Errorf("unknown system: %v, want a config error", err)
	}
}

// TestRedfishOffPolls: a BMC whose off takes a while; Do polls until off.
func TestRedfishOffPolls(t *testing.T) {
	m := powertest.NewFakeMachine(true)
	m.OffDelay = 150 * time.Millisecond
	_, srv := redfishDouble(t, map[string]powertest.Machine{"n": m})
	c := newController(t, power.Target{Protocol: "redfish", Address: srv.URL, Username: user, Password: password}, fast)
	start := time.Now()
	state, err := power.Do(context.Background(), c, power.ActionOff, false, fast)
	if err != nil || state != power.StateOff {
		t.Fatalf("Do off: %s, %v", state, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("returned after %s, before the machine was off", d)
	}
}
