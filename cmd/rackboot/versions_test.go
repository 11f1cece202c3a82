package main

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

func TestVersions(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	c, stdout, stderr := e.cli()
	if code := runCmd(c, (*cli).versions); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "versions", stdout.String())

	c, stdout, stderr = e.cli()
	if code := runCmd(c, (*cli).versions, "--json"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []api.VersionCount
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	want := []api.VersionCount{
		{Version: registry.Version{Name: "demo-1.0", Number: 10}, Count: 2, MACs: []string{macN01, macN02}},
		{Version: registry.Version{Name: "demo-1.1", Number: 11}, Count: 1, MACs: []string{macR2}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
