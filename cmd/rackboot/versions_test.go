package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
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
	text := stdout.String()

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
		{Count: 5, MACs: []string{"52:54:00:77:00:03", "52:54:00:77:00:04", "52:54:00:78:00:02", "52:54:00:78:00:03", "52:54:00:99:00:01"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(versionRows(got), textRows(t, text)); diff != "" {
		t.Errorf("the text and --json disagree (-json +text):\n%s", diff)
	}
}

// versionRows is what the table must say of the JSON lines: the version,
// how many machines, and as many names.
func versionRows(vs []api.VersionCount) [][]string {
	var rows [][]string
	for _, v := range vs {
		name := v.Name
		if v.Version.IsZero() {
			name = "(none)"
		}
		rows = append(rows, []string{name, strconv.Itoa(v.Count), strconv.Itoa(len(v.MACs))})
	}
	return rows
}

// textRows reads the table back: VERSION, MACHINES, and how many WHICH
// names.
func textRows(t *testing.T, text string) [][]string {
	t.Helper()
	var rows [][]string
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for _, l := range lines[1:] {
		f := regexp.MustCompile(`\s{2,}`).Split(l, 4)
		if len(f) != 4 {
			t.Fatalf("table line %q", l)
		}
		rows = append(rows, []string{f[0], f[2], strconv.Itoa(len(strings.Split(f[3], ", ")))})
	}
	return rows
}
