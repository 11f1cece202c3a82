package main

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/api"
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
