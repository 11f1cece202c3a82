package lab

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestTimeline(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lines := []Line{
		{180 * time.Millisecond, "Booting from ROM..."},
		{237 * time.Millisecond, "iPXE initialising devices...ok"},
		{4435 * time.Millisecond, "http://192.168.77.1:8080/boot.ipxe... ok"},
		{9743 * time.Millisecond, "RACKBOOT_E2E_MARKER mac=52:54:00:77:00:01"},
	}
	entry := func(at time.Duration, msg, mac string) LogEntry {
		return LogEntry{Time: start.Add(at), Msg: msg, Attrs: map[string]any{"mac": mac}}
	}
	server := []LogEntry{
		entry(-time.Minute, "answered", "52:54:00:77:00:01"), // an earlier boot
		entry(2300*time.Millisecond, "answered", "52:54:00:77:00:02"),
		entry(2400*time.Millisecond, "answered", "52:54:00:77:00:01"),
		entry(4500*time.Millisecond, "script served", "52:54:00:77:00:01"),
	}
	is := func(msg string) func(LogEntry) bool {
		return func(e LogEntry) bool { return e.Msg == msg && e.Str("mac") == "52:54:00:77:00:01" }
	}
	milestones := []Milestone{
		{Name: "dhcp", Server: is("answered")},
		{Name: "ipxe", Serial: "iPXE initialising"},
		{Name: "script", Server: is("script served")},
		{Name: "tftp", Server: is("tftp transfer done")},
		{Name: "marker", Serial: Marker},
	}
	got, err := timeline("bios", start, lines, server, milestones)
	if err != nil {
		t.Fatal(err)
	}
	want := Timeline{VM: "bios", Points: []Point{
		{"dhcp", 2400 * time.Millisecond, true},
		{"ipxe", 237 * time.Millisecond, true},
		{"script", 4500 * time.Millisecond, true},
		{"tftp", 0, false},
		{"marker", 9743 * time.Millisecond, true},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}

	uefi := Timeline{VM: "uefi", Points: []Point{
		{"dhcp", 1200 * time.Millisecond, true},
		{"ipxe", 8900 * time.Millisecond, true},
		{"script", 15200 * time.Millisecond, true},
		{"tftp", 6100 * time.Millisecond, true},
		{"marker", 21157 * time.Millisecond, true},
	}}
	golden(t, "timeline.golden", FormatTimelines([]Timeline{got, uefi}))

	for _, bad := range []Milestone{{Name: "nothing"}, {Name: "bad regexp", Serial: "("}} {
		if _, err := timeline("bios", start, lines, server, []Milestone{bad}); err == nil {
			t.Errorf("milestone %q: no error", bad.Name)
		}
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}
