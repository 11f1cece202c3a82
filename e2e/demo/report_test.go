package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/profiles"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestTable renders the final table of a rack where one machine got
// through, one installed an OS that calls itself wrongly, and one was
// interrupted during its install.
func TestTable(t *testing.T) {
	ms := rack.Machines()
	host := func(name, version, layout string) *profiles.Host {
		return &profiles.Host{Hostname: name, Version: &profiles.Version{Name: version}, Layout: &profiles.Layout{Name: layout}}
	}
	ok := &machine{Machine: ms[0], host: host("r1-n01", "demo-1.0", "compact"), installed: true,
		installEnd: rack.Ending{Line: lab.Line{At: 28500 * time.Millisecond}}, boot: &lab.VM{},
		report: osimage.Report{Version: "demo-1.0", Hostname: "r1-n01", Done: true}}
	wrong := &machine{Machine: ms[1], host: host("r1-s01", "demo-1.0", "storage"), installed: true,
		installEnd: rack.Ending{Line: lab.Line{At: 34600 * time.Millisecond}}, boot: &lab.VM{},
		report: osimage.Report{Version: "demo-1.0", Hostname: "nobody", Data: "created by demo-1.0 on nobody", Done: true}}
	wrong.err = wrong.check()
	stopped := &machine{Machine: ms[2], host: host("r2-n02", "demo-1.1", "compact"), install: &lab.VM{},
		err: errors.Join(errors.New("waiting"), context.Canceled)}
	var b bytes.Buffer
	if err := table(&b, []*machine{ok, wrong, stopped}); err != nil {
		t.Fatal(err)
	}
	golden(t, "table.golden", b.Bytes())
}

func TestCheck(t *testing.T) {
	h := &profiles.Host{Hostname: "r1-n01", Version: &profiles.Version{Name: "demo-1.0"}}
	tests := []struct {
		name string
		r    osimage.Report
		ok   bool
	}{
		{"as asked", osimage.Report{Version: "demo-1.0", Hostname: "r1-n01", Done: true}, true},
		{"other version", osimage.Report{Version: "demo-1.1", Hostname: "r1-n01", Done: true}, false},
		{"other hostname", osimage.Report{Version: "demo-1.0", Hostname: "none", Done: true}, false},
		{"gave up", osimage.Report{Version: "demo-1.0", Hostname: "r1-n01", Fail: "no root", Done: true}, false},
		{"not done", osimage.Report{Version: "demo-1.0", Hostname: "r1-n01"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &machine{host: h, report: tt.r}
			if err := m.check(); (err == nil) != tt.ok {
				t.Errorf("check() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want options
		ok   bool
	}{
		{"defaults", nil, options{timeout: 6 * time.Minute}, true},
		{"keep, timeout", []string{"--keep", "--timeout", "90s"}, options{keep: true, timeout: 90 * time.Second}, true},
		{"zero timeout", []string{"--timeout", "0s"}, options{}, false},
		{"argument", []string{"node1"}, options{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			got, err := parseFlags(tt.args, &errOut)
			if (err == nil) != tt.ok {
				t.Fatalf("parseFlags(%q) = %v, want ok=%v; stderr:\n%s", tt.args, err, tt.ok, errOut.String())
			}
			if tt.ok && got != tt.want {
				t.Errorf("parseFlags(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
		})
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}
