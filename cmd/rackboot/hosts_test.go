package main

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

func TestHosts(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	tests := []struct {
		name   string
		args   []string
		golden string // or
		stderr string
	}{
		{name: "all", golden: "hosts"},
		{name: "not patched", args: []string{"--version-below", "11"}, golden: "hosts-version-below"},
		{name: "installing in rack 1", args: []string{"--state", "installing", "--label", "rack=r1"}, golden: "hosts-installing"},
		{name: "two labels", args: []string{"--label", "rack=r2", "--label=role=storage"}, golden: "hosts-labels"},
		{name: "none", args: []string{"--state", "failed"}, stderr: "no host matches\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, stdout, stderr := e.cli()
			if code := runCmd(c, (*cli).hosts, tt.args...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tt.golden != "" {
				golden(t, tt.golden, stdout.String())
			}
			if diff := cmp.Diff(tt.stderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHostsJSON(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	c, stdout, stderr := e.cli()
	if code := runCmd(c, (*cli).hosts, "--version-below", "11", "--json"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var hs []api.HostView
	if err := json.Unmarshal([]byte(stdout.String()), &hs); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	var got []string
	for _, h := range hs {
		got = append(got, h.MAC+" "+h.Hostname+" "+h.Version.Name)
	}
	want := []string{macN01 + " r1-n01 demo-1.0", macN02 + " r1-n02 demo-1.0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestHostsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--state", "broken"},
		{"--version-below", "x"},
		{"--label", "novalue"},
		{"extra"},
		{"--colour"},
	} {
		c, _, stderr := testCLI(map[string]string{"RACKBOOT_TOKEN": "unused"})
		if code := runCmd(c, (*cli).hosts, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
}

// TestHostTableHeld: a held host reads "pending (held)" in the table and
// its reason follows the table, so an admin sees why it does not install.
func TestHostTableHeld(t *testing.T) {
	c := newCLI(io.Discard, io.Discard)
	c.loc = time.UTC
	why := "catalog.yaml:21: version demo-1.0: image demo-1.0.img.zst: no such file in the artifacts directory"
	hs := []api.HostView{
		{HostRecord: registry.HostRecord{MAC: "52:54:00:77:00:01", Hostname: "r1-n01", State: registry.StatePending}, Held: why},
		{HostRecord: registry.HostRecord{MAC: "52:54:00:77:00:02", Hostname: "r1-n02", State: registry.StatePending}},
	}
	got := c.hostTable(hs)
	for _, want := range []string{"pending (held)", "52:54:00:77:00:01 r1-n01: held: " + why + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "(held)") != 1 {
		t.Errorf("only r1-n01 is held:\n%s", got)
	}
}
