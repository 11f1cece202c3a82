package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/pki"
	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore"
	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
)

// TestSharedAppliances runs the wiring of two appliances on one real
// (embedded) etcd: they end with one token key, one admin token and one
// CA; each lists the other's API; an event published on one reaches the
// other's subscribers and progress table, not its own twice.
func TestSharedAppliances(t *testing.T) {
	eps := etcdtest.Start(t)
	prefix := etcdtest.Prefix()
	log := slog.New(slog.DiscardHandler)
	type appliance struct {
		store *etcdstore.Store
		cfg   serveConfig
		reg   *registry.Registry
		admin string
		cl    *cluster
		bus   *eventBus
		srv   *api.Server
	}
	open := func(id, ip string) *appliance {
		s, err := etcdstore.Open(context.Background(), etcdstore.Config{Endpoints: eps, Prefix: prefix, ID: id, LeaseTTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cfg := defaultServeConfig()
		cfg.Data = t.TempDir()
		admin, err := api.AdminToken(cfg.Data)
		if err != nil {
			t.Fatal(err)
		}
		// Each appliance had a CA of its own before it joined.
		if _, err := pki.Ensure(filepath.Join(cfg.Data, tlsDir), []string{ip}, time.Now()); err != nil {
			t.Fatal(err)
		}
		a := &appliance{store: s, cfg: cfg, reg: &registry.Registry{Store: s}, admin: admin}
		if err := shareSecrets(context.Background(), s, cfg, a.reg, &a.admin, log); err != nil {
			t.Fatal(err)
		}
		a.cl = newCluster(s, []string{"https://" + ip + ":8443"}, nil, log)
		a.cl.setProfiles("digest-1")
		a.bus = newEventBus(s, nil, log)
		a.srv = &api.Server{Events: &api.Events{Forward: a.bus.forward}}
		return a
	}
	a := open("a", "10.0.0.1")
	b := open("b", "10.0.0.2")

	if !bytes.Equal(a.reg.Key, b.reg.Key) || len(a.reg.Key) != 32 {
		t.Errorf("token keys differ (%x, %x)", a.reg.Key, b.reg.Key)
	}
	if a.admin != b.admin {
		t.Errorf("admin tokens differ")
	}
	if tok, err := api.ReadAdminToken(b.cfg.Data); err != nil || tok != a.admin {
		t.Errorf("b's admin.token = %q, %v; want the shared one", tok, err)
	}
	caA, _ := os.ReadFile(filepath.Join(a.cfg.Data, tlsDir, pki.ApplianceCAFile))
	caB, _ := os.ReadFile(filepath.Join(b.cfg.Data, tlsDir, pki.ApplianceCAFile))
	if len(caA) == 0 || !bytes.Equal(caA, caB) {
		t.Errorf("the appliances' CAs differ")
	}
	idB, err := pki.Ensure(filepath.Join(b.cfg.Data, tlsDir), []string{"10.0.0.2"}, time.Now())
	if err != nil || !idB.Renewed {
		t.Errorf("b's certificate is not signed again under the shared CA: %v, renewed %v", err, idB.Renewed)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, x := range []*appliance{a, b} {
		go x.cl.run(ctx)
		go x.bus.run(ctx)
		go x.bus.receive(ctx, x.srv)
	}
	eventually(t, 10*time.Second, "each lists the other's API", func() bool {
		pa, pb := a.cl.peerAPIs(), b.cl.peerAPIs()
		return len(pa) == 1 && pa[0] == "https://10.0.0.2:8443" && len(pb) == 1 && pb[0] == "https://10.0.0.1:8443"
	})

	subA, subB := a.srv.Events.Subscribe(nil), b.srv.Events.Subscribe(nil)
	defer subA.Close()
	defer subB.Close()
	time.Sleep(500 * time.Millisecond) // the subscriptions' watches are open
	a.srv.Events.Publish(api.Event{Type: api.EventProgress, MAC: "52:54:00:00:00:01", Data: api.ProgressEvent{MAC: "52:54:00:00:00:01", Attempt: 1}})
	select {
	case ev := <-subB.C:
		if p, ok := ev.Data.(api.ProgressEvent); !ok || p.Attempt != 1 {
			t.Fatalf("b got %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a's event did not reach b")
	}
	<-subA.C // a's own subscriber, once
	select {
	case ev := <-subA.C:
		t.Fatalf("a got its own event back: %+v", ev)
	case <-time.After(time.Second):
	}

	vs, err := a.cl.views(context.Background())
	if err != nil || len(vs) != 2 || !vs[0].Self || vs[1].Self || vs[1].API[0] != "https://10.0.0.2:8443" {
		t.Errorf("a's views = %+v, %v", vs, err)
	}
	text := applianceTable(vs, time.Now())
	if !strings.Contains(text, "a (this one)") || !strings.Contains(text, "https://10.0.0.2:8443") || strings.Contains(text, "different profiles") {
		t.Errorf("appliances table:\n%s", text)
	}

	// The profiles differ: both say so.
	b.cl.setProfiles("digest-2")
	eventually(t, 10*time.Second, "a sees b's other profiles", func() bool { return a.cl.profilesWarning() != "" })
	if vs, _ := a.cl.views(context.Background()); !strings.Contains(applianceTable(vs, time.Now()), "serve 2 different profiles") {
		t.Errorf("the appliances table does not say the profiles differ:\n%s", applianceTable(vs, time.Now()))
	}
	// b leaves (dies): a's list empties within the lease.
	b.store.Close()
	eventually(t, 10*time.Second, "b leaves a's list", func() bool { return len(a.cl.peerAPIs()) == 0 })
}

func eventually(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: not true: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
