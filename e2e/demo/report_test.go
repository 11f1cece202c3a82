package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/profiles"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// host is a profile of the Debian fleet's kind.
func host(name, address string) *profiles.Host {
	return &profiles.Host{Hostname: name, Version: &profiles.Version{Name: "debian-12.1"},
		Layout: &profiles.Layout{Name: "server", Partitions: []profiles.Partition{
			{Name: "data", Mount: "/srv/data"}, {Name: "cidata", Content: profiles.ContentConfig}}},
		Network: profiles.Network{Address: address}}
}

// answers is what a Debian machine of the fleet answers over SSH, given
// its hostname, address and cloud-init status.
func answers(hostname, address, status string) session {
	return session{
		{cmd: cmdHostname, out: hostname + "\n"},
		{cmd: cmdAddresses, out: "boot0            UP             " + address + " \n"},
		{cmd: cmdOSRelease, out: "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nIMAGE_VERSION=debian-12.1\n"},
		{cmd: "df -h / /srv/data", out: "Filesystem      Size  Used Avail Use% Mounted on\n" +
			"/dev/vda3       3.5G  1.1G  2.3G  32% /\n/dev/vda4       233M   14K  216M   1% /srv/data\n"},
		{cmd: cmdCloudInit, out: "status: " + status + "\ntime: Sun, 07 Dec 2025 01:50:12 +0000\ndetail:\nDataSourceNoCloud [seed=/dev/vda5][dsmode=net]\n"},
	}
}

// TestTable renders the final table of a rack where one machine got
// through, one answered with another hostname, and one was interrupted
// during its install.
func TestTable(t *testing.T) {
	ms := rack.DebianMachines()
	ok := &machine{Machine: ms[0], host: host("deb-n01", "192.168.77.71/24"), installed: true,
		installEnd: rack.Ending{Line: lab.Line{At: 61500 * time.Millisecond}}, boot: &lab.VM{},
		login: 95300 * time.Millisecond, said: answers("deb-n01", "192.168.77.71/24", "done")}
	wrong := &machine{Machine: ms[1], host: host("deb-n02", "192.168.77.72/24"), installed: true,
		installEnd: rack.Ending{Line: lab.Line{At: 74600 * time.Millisecond}}, boot: &lab.VM{},
		login: 101200 * time.Millisecond, said: answers("localhost", "192.168.77.72/24", "error")}
	wrong.err = wrong.check()
	stopped := &machine{Machine: ms[2], host: host("deb-n03", "192.168.77.73/24"), install: &lab.VM{},
		err: errors.Join(errors.New("waiting"), context.Canceled)}
	var b bytes.Buffer
	if err := table(&b, []*machine{ok, wrong, stopped}); err != nil {
		t.Fatal(err)
	}
	golden(t, "table.golden", b.Bytes())
}

func TestCheck(t *testing.T) {
	const addr = "192.168.77.71/24"
	noData := answers("deb-n01", addr, "done")
	noData[3].out = "Filesystem      Size  Used Avail Use% Mounted on\n/dev/vda3  3.5G  1.1G  2.3G  32% /\n/dev/vda3  3.5G  1.1G  2.3G  32% /\n"
	otherVersion := answers("deb-n01", addr, "done")
	otherVersion[2].out = "IMAGE_VERSION=debian-12.2\n"
	failed := answers("deb-n01", addr, "done")
	failed[0].err = errors.New("exit status 1")
	tests := []struct {
		name string
		s    session
		want string // in the error; "" for none
	}{
		{"as asked", answers("deb-n01", addr, "done"), ""},
		{"other hostname", answers("localhost", addr, "done"), `calls itself "localhost"`},
		{"other address", answers("deb-n01", "192.168.77.120/24", "done"), "addresses"},
		{"other version", otherVersion, `runs "debian-12.2"`},
		{"cloud-init error", answers("deb-n01", addr, "error"), `cloud-init status is "error"`},
		{"cloud-init unknown", answers("deb-n01", addr, "done")[:4], `cloud-init status is ""`},
		{"data not mounted", noData, "not mounted at /srv/data"},
		{"command failed", failed, "`hostname`: exit status 1"},
		{"no session", nil, "calls itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &machine{host: host("deb-n01", addr), said: tt.s}
			err := m.check()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("check() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestShow renders what the demo prints of a machine's SSH session: one
// that got through, one whose cloud-init failed and stayed on, one that
// never let the demo in.
func TestShow(t *testing.T) {
	ms := rack.DebianMachines()
	ok := &machine{Machine: ms[0], host: host("deb-n01", "192.168.77.71/24"), user: "ops", boot: &lab.VM{},
		login: 95300 * time.Millisecond, settled: 121 * time.Second, off: 131 * time.Second,
		said: answers("deb-n01", "192.168.77.71/24", "done")}
	bad := &machine{Machine: ms[1], host: host("deb-n02", "192.168.77.72/24"), user: "ops", boot: &lab.VM{},
		login: 101200 * time.Millisecond, settled: 140 * time.Second,
		said: answers("deb-n02", "192.168.77.72/24", "error")}
	bad.err = bad.check()
	locked := &machine{Machine: ms[2], host: host("deb-n03", "192.168.77.73/24"), user: "ops", boot: &lab.VM{},
		err: errors.New("lab: ssh ops@192.168.77.73:22 from ns: still failing after 12m0s: connection refused")}
	var b bytes.Buffer
	say := sayFunc(func(step, format string, args ...any) {
		fmt.Fprintf(&b, "%-10s %s\n", step, fmt.Sprintf(format, args...))
	})
	for _, m := range []*machine{ok, bad, locked} {
		m.show(say)
	}
	golden(t, "show.golden", b.Bytes())
}

func TestCommands(t *testing.T) {
	got := commands(host("deb-n01", "192.168.77.71/24"))
	want := []string{cmdHostname, cmdAddresses, cmdOSRelease, "df -h / /srv/data", cmdCloudInit}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if got, want := waitCloudInit(90500*time.Millisecond), "timeout 90 cloud-init status --wait >/dev/null"; got != want {
		t.Errorf("waitCloudInit = %q, want %q", got, want)
	}
	if got, want := waitCloudInit(-time.Second), "timeout 1 cloud-init status --wait >/dev/null"; got != want {
		t.Errorf("waitCloudInit past the deadline = %q, want %q", got, want)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want options
		ok   bool
	}{
		{"defaults", nil, options{timeout: 12 * time.Minute}, true},
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
