package profiles

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fleetDir writes a fleet of racks×perRack hosts (at most 256 racks of
// 64,000), one file per rack, with
// a group per rack (by MAC prefix), a label group, and a static address per
// host: what a large site's generated profiles look like.
func fleetDir(b testing.TB, racks, perRack int) string {
	b.Helper()
	dir := b.TempDir()
	var cat strings.Builder
	cat.WriteString(testCatalog)
	cat.WriteString("defaults:\n  channel: stable\n  layout: l1\n  ssh_keys: [\"" + testKey + "\"]\n  users: [{name: ops, sudo: true, password: \"" + testHash + "\"}]\ngroups:\n")
	cat.WriteString("  - {name: storage, match: {labels: {role: storage}}, layout: l2}\n")
	for r := range racks {
		fmt.Fprintf(&cat, "  - {name: rack%d, match: {mac_prefix: \"52:54:%02x:%02x\"}, network: {gateway: 10.%d.0.1, dns: [10.0.0.53]}}\n",
			r, r>>8, r&0xff, r)
	}
	if err := os.WriteFile(filepath.Join(dir, "catalog.yaml"), []byte(cat.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	for r := range racks {
		var f strings.Builder
		f.WriteString("hosts:\n")
		for i := range perRack {
			role := "compute"
			if i%10 == 0 {
				role = "storage"
			}
			fmt.Fprintf(&f, "  - mac: 52:54:%02x:%02x:%02x:%02x\n    hostname: r%d-n%d\n    labels: {rack: r%d, role: %s}\n    network: {address: 10.%d.%d.%d/16}\n",
				r>>8, r&0xff, i>>8, i&0xff, r, i, r, role, r, i/250, i%250+2)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("rack%03d.yaml", r)), []byte(f.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkLoad100k loads and validates 100,000 hosts in 100 files. The
// goal is under 2 s per load on the appliance's 2 cores.
func BenchmarkLoad100k(b *testing.B) {
	dir := fleetDir(b, 100, 1000)
	b.ReportAllocs()
	var set *Set
	for b.Loop() {
		var err error
		if set, err = Load(dir); err != nil {
			b.Fatal(err)
		}
	}
	if set.Len() != 100_000 {
		b.Fatalf("%d hosts", set.Len())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e5, "ns/host")
	// What a snapshot keeps in memory once loaded, as opposed to what
	// loading it allocates and drops (B/op).
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	runtime.KeepAlive(set)
	set = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	b.ReportMetric(float64(with.HeapAlloc-without.HeapAlloc)/(1<<20), "MiB-retained")
}

// BenchmarkLookup looks up hosts of a 100,000-host snapshot by MAC.
func BenchmarkLookup(b *testing.B) {
	set, err := Load(fleetDir(b, 100, 1000))
	if err != nil {
		b.Fatal(err)
	}
	hosts := set.Hosts()
	macs := make([][]byte, 1024)
	for i := range macs {
		macs[i] = hosts[(i*7919)%len(hosts)].MAC
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := set.Lookup(macs[i&1023]); !ok {
			b.Fatal("not found")
		}
		i++
	}
}

// TestLoadScalesLinearly guards the benchmark's goal in ordinary test runs:
// ten times the hosts must cost about ten times the time, so a lookup that
// became a scan or a resolution that became quadratic (a hundred times)
// shows here long before it reaches an appliance. Comparing two loads on
// the same machine keeps the test fair on a busy or race-instrumented run.
func TestLoadScalesLinearly(t *testing.T) {
	small, large := fleetDir(t, 1, 300), fleetDir(t, 5, 600)
	timeLoad := func(dir string, hosts int) time.Duration {
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			set, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if set.Len() != hosts {
				t.Fatalf("%d hosts, want %d", set.Len(), hosts)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	s, l := timeLoad(small, 300), timeLoad(large, 3000)
	if l > 40*s {
		t.Errorf("300 hosts load in %v, 3,000 in %v: worse than linear", s, l)
	}
	t.Logf("300 hosts in %v, 3,000 in %v", s, l)
}
