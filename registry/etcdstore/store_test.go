package etcdstore

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
	"github.com/rackboot/rackboot/registry/registrytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	etcdtest.Stop()
	os.Exit(code)
}

var ctx = context.Background()

// testTTL is the lease TTL of the tests' stores: presence and leadership
// of a closed or dead store vanish within about this long.
const testTTL = 2 * time.Second

// open opens a store on endpoints with the tests' settings; the caller
// closes it.
func open(t *testing.T, endpoints []string, prefix, id string) *Store {
	t.Helper()
	s, err := Open(ctx, Config{Endpoints: endpoints, Prefix: prefix, ID: id, LeaseTTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// conformance runs both suites against the etcd at endpoints, each test
// on a prefix of its own.
func conformance(t *testing.T, endpoints []string) {
	t.Run("Store", func(t *testing.T) {
		registrytest.Run(t, func(t *testing.T) registry.Store {
			return open(t, endpoints, etcdtest.Prefix(), "a:8443")
		})
	})
	t.Run("Shared", func(t *testing.T) {
		registrytest.RunShared(t, func(t *testing.T) (a, b registry.Shared) {
			p := etcdtest.Prefix()
			return open(t, endpoints, p, "a:8443"), open(t, endpoints, p, "b:8443")
		})
	})
}

func TestConformance(t *testing.T) {
	conformance(t, etcdtest.Start(t))
}

func TestOpenErrors(t *testing.T) {
	eps := etcdtest.Start(t)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"NoEndpoints", Config{ID: "a"}},
		{"NoID", Config{Endpoints: eps}},
		{"SlashInID", Config{Endpoints: eps, ID: "a/b"}},
		{"Unreachable", Config{Endpoints: []string{"http://127.0.0.1:1"}, ID: "a", DialTimeout: 200 * time.Millisecond, CallTimeout: 500 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(ctx, tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// TestPresenceOfDeadStore: an appliance that dies without closing the store
// (its lease no longer renewed) vanishes once the lease expires.
func TestPresenceOfDeadStore(t *testing.T) {
	eps := etcdtest.Start(t)
	p := etcdtest.Prefix()
	a, b := open(t, eps, p, "a"), open(t, eps, p, "b")
	defer b.Close()
	if err := a.Announce(ctx, []byte("a's url")); err != nil {
		t.Fatal(err)
	}
	dead := time.Now()
	a.stop() // the keeper stops renewing; nothing is revoked
	defer a.Close()
	for {
		got, err := b.Appliances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got["a"]; !ok {
			break
		}
		if time.Since(dead) > 5*testTTL {
			t.Fatalf("a still present %v after it stopped renewing its lease (TTL %v)", time.Since(dead), testTTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(dead); d < testTTL/2 {
		t.Errorf("a vanished %v after it died, before its lease (TTL %v) could expire", d, testTTL)
	}
}

// TestLeadershipLost: when the leader's session lease is lost (here
// revoked behind its back), its context ends and another leads.
func TestLeadershipLost(t *testing.T) {
	eps := etcdtest.Start(t)
	p := etcdtest.Prefix()
	a, b := open(t, eps, p, "a"), open(t, eps, p, "b")
	defer a.Close()
	defer b.Close()
	actx, err := a.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.get(ctx, p+"leader/", clientv3.WithPrefix())
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("leader keys = %v, %v; want one", r, err)
	}
	if _, err := b.client.Revoke(ctx, clientv3.LeaseID(r.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-actx.Done():
	case <-time.After(3 * testTTL):
		t.Fatal("the leader's context did not end after its session's lease was revoked")
	}
	lctx, cancel := context.WithTimeout(ctx, 3*testTTL)
	defer cancel()
	if _, err := b.Lead(lctx); err != nil {
		t.Fatalf("b: Lead after a lost its session: %v", err)
	}
}

// TestPresenceRenewed: when the lease is lost while the appliance lives (it
// expired during an outage; here revoked behind its back), the store
// grants a new one and announces itself again on it.
func TestPresenceRenewed(t *testing.T) {
	eps := etcdtest.Start(t)
	p := etcdtest.Prefix()
	a, b := open(t, eps, p, "a"), open(t, eps, p, "b")
	defer a.Close()
	defer b.Close()
	if err := a.Announce(ctx, []byte("a's url")); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	lost := a.lease
	a.mu.Unlock()
	if _, err := b.client.Revoke(ctx, lost); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * testTTL)
	for {
		got, err := b.Appliances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a.mu.Lock()
		renewed := a.lease != lost
		a.mu.Unlock()
		if renewed && string(got["a"]) == "a's url" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after its lease was revoked, a is not announced again (renewed: %v, entries %q)", 5*testTTL, renewed, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClosed: a closed store fails every call at once (never as
// ErrNotFound).
func TestClosed(t *testing.T) {
	s := open(t, etcdtest.Start(t), etcdtest.Prefix(), "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	start := time.Now()
	if _, err := s.Host(ctx, macA); !errors.Is(err, errClosed) {
		t.Errorf("Host = %v, want errClosed", err)
	}
	if _, err := s.Update(ctx, macA, func(*registry.HostRecord, bool) (*registry.Attempt, error) { return nil, nil }); !errors.Is(err, errClosed) {
		t.Errorf("Update = %v, want errClosed", err)
	}
	if err := s.PutBlob(ctx, "k", []byte("v")); !errors.Is(err, errClosed) {
		t.Errorf("PutBlob = %v, want errClosed", err)
	}
	if err := s.Publish(ctx, []byte("m")); !errors.Is(err, errClosed) {
		t.Errorf("Publish = %v, want errClosed", err)
	}
	if err := s.Announce(ctx, nil); !errors.Is(err, errClosed) {
		t.Errorf("Announce = %v, want errClosed", err)
	}
	if _, err := s.Lead(ctx); !errors.Is(err, errClosed) {
		t.Errorf("Lead = %v, want errClosed", err)
	}
	if err := s.Subscribe(ctx, func(string, []byte) {}); !errors.Is(err, errClosed) {
		t.Errorf("Subscribe = %v, want errClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("calls on a closed store took %v", d)
	}
}
