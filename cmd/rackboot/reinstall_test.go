package main

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

// states reads the registry's states of macs.
func (e *adminEnv) states(macs ...string) []registry.State {
	e.t.Helper()
	var out []registry.State
	for _, m := range macs {
		h, err := e.reg.Store.Host(context.Background(), m)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, h.State)
	}
	return out
}

func TestReinstall(t *testing.T) {
	installed := []registry.State{registry.StateInstalled, registry.StateInstalled, registry.StateInstalled}
	tests := []struct {
		name   string
		args   []string
		code   int
		golden string
		after  []registry.State // of r1-n01, r1-n02, r2-n01
	}{
		{"dry run by selector and version", []string{"--selector", "rack=r1", "--version-below", "11", "--dry-run"}, 0, "reinstall-dry-run", installed},
		{"version below", []string{"--version-below", "11", "--reason", "CVE-2026-12345"}, 0, "reinstall-version-below",
			[]registry.State{registry.StatePending, registry.StatePending, registry.StateInstalled}},
		{"selector, canary", []string{"--selector", "rack=r2,firmware=bios", "--version", "demo-1.1"}, 0, "reinstall-selector",
			[]registry.State{registry.StateInstalled, registry.StateInstalled, registry.StatePending}},
		{"by name and MAC, one unknown", []string{"r1-n01", macOut}, 1, "reinstall-skipped",
			[]registry.State{registry.StatePending, registry.StateInstalled, registry.StateInstalled}},
		{"selector matching nothing", []string{"--selector", "rack=r9"}, 0, "reinstall-nothing", installed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAdminEnv(t)
			e.fleet()
			c, stdout, stderr := e.cli()
			if code := runCmd(c, (*cli).reinstall, tt.args...); code != tt.code {
				t.Errorf("exit %d, want %d: %s", code, tt.code, stderr)
			}
			golden(t, tt.golden, stdout.String())
			if diff := cmp.Diff(tt.after, e.states(macN01, macN02, macR2)); diff != "" {
				t.Errorf("states of r1-n01, r1-n02, r2-n01 (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReinstallRecorded: the request's reason, version and asker reach
// the record.
func TestReinstallRecorded(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	c, _, stderr := e.cli()
	if code := runCmd(c, (*cli).reinstall, macR2, "--reason", "canary", "--version", "demo-1.0"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	h, err := e.reg.Store.Host(context.Background(), macR2)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.Reinstall; r == nil || r.Reason != "canary" || r.Version != "demo-1.0" || r.By != "alice via admin API from 127.0.0.1" {
		t.Errorf("reinstall record: %+v", r)
	}
	if h.PendingVersion != "demo-1.0" {
		t.Errorf("pending version %q", h.PendingVersion)
	}
}

func TestReinstallErrors(t *testing.T) {
	e := newAdminEnv(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no target", nil, 2, ""},
		{"bad selector", []string{"--selector", "rack"}, 2, "rackboot reinstall: --selector \"rack\": want KEY=VALUE\n"},
		{"bad number", []string{"--version-below", "ten"}, 2, "rackboot reinstall: --version-below \"ten\": want a version number\n"},
		{"version not in the catalog", []string{macN01, "--version", "demo-9"}, 1, "rackboot reinstall: 400: version \"demo-9\" is not in the catalog\n"},
		{"unknown name", []string{"nosuch"}, 1, "rackboot reinstall: \"nosuch\" is neither a MAC address nor the hostname of a known host\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, stderr := e.cli()
			if code := runCmd(c, (*cli).reinstall, tt.args...); code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if tt.want != "" {
				if diff := cmp.Diff(tt.want, stderr.String()); diff != "" {
					t.Errorf("stderr (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestReinstallWipeData: --wipe-data needs --reason, reaches the record,
// and says what it allows.
func TestReinstallWipeData(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	c, _, stderr := e.cli()
	if code := runCmd(c, (*cli).reinstall, "r1-n01", "--wipe-data"); code != 2 || !strings.Contains(stderr.String(), "--reason") {
		t.Errorf("--wipe-data without --reason: exit %d, %q; want 2 asking for a reason", code, stderr)
	}
	if s := e.states(macN01); s[0] != registry.StateInstalled {
		t.Fatalf("a refused request changed the host: %s", s[0])
	}
	c, stdout, stderr := e.cli()
	if code := runCmd(c, (*cli).reinstall, "r1-n01", "--wipe-data", "--reason", "layout redone"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "reinstall-wipe-data", stdout.String())
	h, err := e.reg.Store.Host(context.Background(), macN01)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.Reinstall; r == nil || !r.WipeData || r.Reason != "layout redone" || !h.WipeData() {
		t.Errorf("reinstall record: %+v", r)
	}
}

// TestHistoryWipeData: an attempt allowed to wipe data says so.
func TestHistoryWipeData(t *testing.T) {
	c, _, _ := testCLI(nil)
	hist := []registry.Attempt{{ID: 1, Number: 1, Reason: "reinstall: layout redone", Result: registry.ResultSuccess,
		WipeData: &registry.Reinstall{By: "alice", Reason: "layout redone", WipeData: true}}}
	if got := c.historyText(api.HostView{}, hist); !strings.Contains(got, "reinstall: layout redone (wipe data)") {
		t.Errorf("history:\n%s", got)
	}
}
