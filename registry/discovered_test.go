package registry_test

import (
	"net"
	"testing"
	"time"

	"github.com/rackboot/rackboot/registry"
)

// hwN is the n-th MAC of a test flood.
func hwN(n int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xee, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func discovered(t *testing.T, r *registry.Registry) map[string]registry.HostRecord {
	t.Helper()
	hs, err := r.Store.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]registry.HostRecord{}
	for _, h := range hs {
		if h.State == registry.StateDiscovered {
			out[h.MAC] = h
		}
	}
	return out
}

// TestDiscoveredCap: a flood of new unknown MACs stays within the cap, and
// evicts records seen once before a machine that keeps booting; a host of
// the profiles and one with history are never evicted.
func TestDiscoveredCap(t *testing.T) {
	r, clock, _ := newRegistry(t)
	r.MaxDiscovered = 8
	var forgot int
	r.OnForget = func(reason string, n int) {
		if reason == registry.ForgetCap {
			forgot += n
		}
	}
	// A known host and a real unknown machine that boots twice.
	if _, err := r.Boot(ctx, hwA, "r1-n01", true, true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Boot(ctx, hwB, "", false, true); err != nil {
		t.Fatal(err)
	}
	*clock = clock.Add(time.Minute)
	if _, err := r.Boot(ctx, hwB, "", false, true); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		*clock = clock.Add(time.Second)
		d, err := r.Boot(ctx, hwN(i), "", false, true)
		if err != nil {
			t.Fatal(err)
		}
		if d.Kind != registry.BootDiscovery {
			t.Fatalf("boot %d = %s, want discovery", i, d.Kind)
		}
	}
	got := discovered(t, r)
	if len(got) != 8 {
		t.Errorf("%d discovered records after 100 new MACs, want the cap, 8", len(got))
	}
	if _, ok := got[hwB.String()]; !ok {
		t.Errorf("the machine seen twice was evicted by MACs seen once")
	}
	for i := 93; i < 100; i++ {
		if _, ok := got[hwN(i).String()]; !ok {
			t.Errorf("recent MAC %s evicted", hwN(i))
		}
	}
	if h, err := r.Store.Host(ctx, hwA.String()); err != nil || h.State != registry.StatePending {
		t.Errorf("known host = %+v, %v; want pending, kept", h, err)
	}
	if forgot != 100+1-8 {
		t.Errorf("OnForget counted %d evictions, want %d", forgot, 100+1-8)
	}
}

// TestDiscoveredExpiry: Sweep forgets what was not seen for the TTL and
// keeps what booted since.
func TestDiscoveredExpiry(t *testing.T) {
	r, clock, _ := newRegistry(t)
	r.DiscoveredTTL = time.Hour
	for i := range 5 {
		if _, err := r.Boot(ctx, hwN(i), "", false, true); err != nil {
			t.Fatal(err)
		}
	}
	*clock = clock.Add(40 * time.Minute)
	if _, err := r.Boot(ctx, hwN(0), "", false, true); err != nil { // seen again
		t.Fatal(err)
	}
	if n, err := r.Sweep(ctx); n != 0 || err != nil {
		t.Fatalf("Sweep before the TTL = %d, %v; want 0", n, err)
	}
	*clock = clock.Add(30 * time.Minute)
	if n, err := r.Sweep(ctx); n != 4 || err != nil {
		t.Fatalf("Sweep after the TTL = %d, %v; want 4", n, err)
	}
	got := discovered(t, r)
	if _, ok := got[hwN(0).String()]; len(got) != 1 || !ok {
		t.Errorf("after expiry: %v; want only %s", got, hwN(0))
	}
	// A lowered cap is applied by the next sweep.
	for i := 10; i < 20; i++ {
		if _, err := r.Boot(ctx, hwN(i), "", false, true); err != nil {
			t.Fatal(err)
		}
	}
	r.MaxDiscovered = 3
	if n, err := r.Sweep(ctx); n != 8 || err != nil {
		t.Errorf("Sweep over a lowered cap = %d, %v; want 8", n, err)
	}
	if got := discovered(t, r); len(got) != 3 {
		t.Errorf("%d discovered after the sweep, want 3", len(got))
	}
}

// TestForgetDiscovered forgets discovered records only: not a pending
// host, not one that keep holds for (in the profiles).
func TestForgetDiscovered(t *testing.T) {
	r, _, _ := newRegistry(t)
	if _, err := r.Boot(ctx, hwA, "r1-n01", true, true); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := r.Boot(ctx, hwN(i), "", false, true); err != nil {
			t.Fatal(err)
		}
	}
	// A discovered machine made pending by a reinstall has left discovery.
	if _, err := r.Reinstall(ctx, hwN(9), registry.ReinstallRequest{Reason: "adopt"}); err != nil {
		t.Fatal(err)
	}
	keep := hwN(0).String()
	n, err := r.ForgetDiscovered(ctx, func(mac string) bool { return mac == keep })
	if err != nil || n != 8 {
		t.Fatalf("ForgetDiscovered = %d, %v; want 8", n, err)
	}
	hs, _ := r.Store.Hosts(ctx)
	var left []string
	for _, h := range hs {
		left = append(left, h.MAC+" "+string(h.State))
	}
	want := map[string]bool{hwA.String() + " pending": true, keep + " discovered": true, hwN(9).String() + " pending": true}
	if len(left) != len(want) {
		t.Fatalf("left %v, want %v", left, want)
	}
	for _, l := range left {
		if !want[l] {
			t.Errorf("left %q, want %v", l, want)
		}
	}
}
