package main

import (
	"context"
	"encoding/json"
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
		{"version below", []string{"--version-below", "11", "--reason", "CVE-2026-12345", "--yes"}, 0, "reinstall-version-below",
			[]registry.State{registry.StatePending, registry.StatePending, registry.StateInstalled}},
		{"selector, canary", []string{"--selector", "rack=r2,firmware=bios", "--version", "demo-1.1", "--yes"}, 0, "reinstall-selector",
			[]registry.State{registry.StateInstalled, registry.StateInstalled, registry.StatePending}},
		{"by name and MAC, one unknown", []string{"r1-n01", macOut}, 1, "reinstall-skipped",
			[]registry.State{registry.StatePending, registry.StateInstalled, registry.StateInstalled}},
		{"selector matching nothing", []string{"--selector", "rack=r9", "--yes"}, 1, "reinstall-nothing", installed},
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

// TestReinstallConfirm: a selection is listed and asked about on a
// terminal, refused without one unless --yes, and after a yes exactly the
// listed machines are marked.
func TestReinstallConfirm(t *testing.T) {
	sel := []string{"--selector", "rack=r1", "--version-below", "11"}
	pending, installed := registry.StatePending, registry.StateInstalled
	tests := []struct {
		name        string
		args        []string
		interactive bool
		answer      string
		code        int
		stderr      string // a part of it
		after       []registry.State
	}{
		{"no terminal", sel, false, "", 2, "matches 2 machines; stdin is not a terminal to ask: give --yes", []registry.State{installed, installed}},
		{"no terminal, --yes", append(sel, "--yes"), false, "", 0, "", []registry.State{pending, pending}},
		{"no terminal, --dry-run", append(sel, "--dry-run"), false, "", 0, "", []registry.State{installed, installed}},
		{"yes", sel, true, "y\n", 0, "reinstall 2 machines? [y/N] ", []registry.State{pending, pending}},
		{"no", sel, true, "n\n", 1, "nothing changed", []registry.State{installed, installed}},
		{"no answer", sel, true, "", 1, "nothing changed", []registry.State{installed, installed}},
		{"nothing, --dry-run", []string{"--selector", "rack=r9", "--dry-run"}, true, "", 1, "matches no machine", []registry.State{installed, installed}},
		{"by name: no question", []string{"r1-n01", "r1-n02"}, false, "", 0, "", []registry.State{pending, pending}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAdminEnv(t)
			e.fleet()
			c, _, stderr := e.cli()
			c.interactive = func() bool { return tt.interactive }
			c.stdin = strings.NewReader(tt.answer)
			if code := runCmd(c, (*cli).reinstall, tt.args...); code != tt.code {
				t.Errorf("exit %d, want %d: %s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q in it", stderr, tt.stderr)
			}
			if tt.interactive && tt.answer != "" && !strings.Contains(stderr.String(), "r1-n02") {
				t.Errorf("the question does not list the machines: %q", stderr)
			}
			if diff := cmp.Diff(tt.after, e.states(macN01, macN02)); diff != "" {
				t.Errorf("states of r1-n01, r1-n02 (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReinstallJSON: --json names the machines the text names.
func TestReinstallJSON(t *testing.T) {
	args := []string{"--selector", "rack=r1", "--dry-run"}
	e := newAdminEnv(t)
	e.fleet()
	c, text, stderr := e.cli()
	if code := runCmd(c, (*cli).reinstall, args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	c, stdout, stderr := e.cli()
	if code := runCmd(c, (*cli).reinstall, append(args, "--json")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var resp api.ReinstallResponse
	if err := json.Unmarshal([]byte(stdout.String()), &resp); err != nil {
		t.Fatal(err)
	}
	var fromText []string
	for _, l := range strings.Split(text.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.Count(f[0], ":") == 5 {
			fromText = append(fromText, f[0])
		}
	}
	if len(resp.Reinstalled) == 0 || !cmp.Equal(resp.Reinstalled, fromText) {
		t.Errorf("text names %v, JSON %v", fromText, resp.Reinstalled)
	}
}
