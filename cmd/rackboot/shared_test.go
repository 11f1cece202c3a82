package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

func TestStoreTarget(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  serveConfig
		want *etcdTarget
		err  string
	}{
		{"default", serveConfig{}, nil, ""},
		{"bolt", serveConfig{Store: "bolt"}, nil, ""},
		{"one member", serveConfig{Store: "etcd://10.0.0.1:2379"}, &etcdTarget{Endpoints: []string{"http://10.0.0.1:2379"}, Prefix: "/rackboot/"}, ""},
		{"three and a prefix", serveConfig{Store: "etcd://a:2379,b:2379,c:2379/site1/fleet"},
			&etcdTarget{Endpoints: []string{"http://a:2379", "http://b:2379", "http://c:2379"}, Prefix: "/site1/fleet/"}, ""},
		{"tls", serveConfig{Store: "etcd://a:2379", StoreCA: "ca.pem", StoreCert: "c.pem", StoreKey: "k.pem"},
			&etcdTarget{Endpoints: []string{"https://a:2379"}, Prefix: "/rackboot/"}, ""},
		{"scheme", serveConfig{Store: "postgres://a"}, nil, "want bolt or etcd://"},
		{"no port", serveConfig{Store: "etcd://a"}, nil, `member "a": want HOST:PORT`},
		{"bad port", serveConfig{Store: "etcd://a:99999"}, nil, "not a port"},
		{"twice", serveConfig{Store: "etcd://a:1,a:1"}, nil, "named twice"},
		{"empty member", serveConfig{Store: "etcd://a:1,"}, nil, `member ""`},
		{"cert without key", serveConfig{Store: "etcd://a:1", StoreCA: "ca", StoreCert: "c"}, nil, "go together"},
		{"cert without ca", serveConfig{Store: "etcd://a:1", StoreCert: "c", StoreKey: "k"}, nil, "needs store-ca"},
		{"tls on bolt", serveConfig{Store: "bolt", StoreCA: "ca"}, nil, "are for an etcd store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.storeTarget()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("target (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeShared is a registry.Shared in memory for the wiring's unit tests;
// registry/etcdstore's own tests and the e2e test run the real one.
type fakeShared struct {
	registry.Store
	id string

	mu         sync.Mutex
	appliances map[string][]byte
	published  [][]byte
	publishErr error
}

func (f *fakeShared) ID() string { return f.id }
func (f *fakeShared) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	return gen()
}
func (f *fakeShared) Announce(ctx context.Context, info []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appliances[f.id] = info
	return nil
}
func (f *fakeShared) Appliances(ctx context.Context) (map[string][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range f.appliances {
		out[k] = v
	}
	return out, nil
}
func (f *fakeShared) Publish(ctx context.Context, msg []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.publishErr != nil {
		return f.publishErr
	}
	f.published = append(f.published, msg)
	return nil
}
func (f *fakeShared) Subscribe(ctx context.Context, fn func(string, []byte)) error {
	<-ctx.Done()
	return ctx.Err()
}
func (f *fakeShared) Lead(ctx context.Context) (context.Context, error) { return ctx, nil }

func TestCluster(t *testing.T) {
	f := &fakeShared{Store: registry.NewMemory(), id: "a:8443", appliances: map[string][]byte{}}
	info := func(in api.ApplianceView) []byte {
		b, _ := json.Marshal(in)
		return b
	}
	f.appliances["b:8443"] = info(api.ApplianceView{API: []string{"https://10.0.0.2:8443", "https://10.1.0.2:8443"}, Profiles: "bbbbbbbbbbbbbbbb", Leader: true})
	f.appliances["c:8443"] = info(api.ApplianceView{API: []string{"https://10.0.0.3:8443"}, Profiles: "aaaaaaaaaaaaaaaa"})
	c := newCluster(f, []string{"https://10.0.0.1:8443"}, nil, slog.New(slog.DiscardHandler))
	c.setProfiles("aaaaaaaaaaaaaaaa")
	if !c.announce(context.Background()) {
		t.Fatal("announce failed")
	}
	c.refresh(context.Background())
	if got, want := c.peerAPIs(), []string{"https://10.0.0.2:8443", "https://10.0.0.3:8443"}; !cmp.Equal(got, want) {
		t.Errorf("peerAPIs = %q, want %q", got, want)
	}
	if w := c.profilesWarning(); !strings.Contains(w, "b:8443 serves bbbbbbbbbbbb") || strings.Contains(w, "c:8443") {
		t.Errorf("profilesWarning = %q, want b named, not c", w)
	}
	if why := c.rolloutsElsewhere(); !strings.Contains(why, "appliance b:8443 (https://10.0.0.2:8443)") {
		t.Errorf("rolloutsElsewhere = %q, want the leader named", why)
	}
	c.setLeader(true)
	if why := c.rolloutsElsewhere(); why != "" {
		t.Errorf("rolloutsElsewhere of the leader = %q", why)
	}
	f.appliances["b:8443"] = info(api.ApplianceView{API: []string{"https://10.0.0.2:8443"}, Profiles: "aaaaaaaaaaaaaaaa"})
	c.refresh(context.Background())
	if w := c.profilesWarning(); w != "" {
		t.Errorf("profilesWarning after b caught up = %q", w)
	}
	rep := (&readiness{cluster: c}).report(context.Background())
	if rep.Warnings != nil {
		t.Errorf("readyz warnings = %v, want none", rep.Warnings)
	}
	c.setProfiles("cccccccccccccccc")
	c.refresh(context.Background())
	rep = (&readiness{cluster: c}).report(context.Background())
	if !strings.Contains(rep.Warnings["profiles"], "differ from another appliance's") {
		t.Errorf("readyz warnings = %v, want profiles", rep.Warnings)
	}
}

func TestEventBus(t *testing.T) {
	f := &fakeShared{Store: registry.NewMemory(), id: "a"}
	b := newEventBus(f, nil, slog.New(slog.DiscardHandler))
	for i := range 5 {
		b.forward(api.Event{Type: api.EventProgress, MAC: "m1", Data: api.ProgressEvent{MAC: "m1", Attempt: i}})
	}
	b.forward(api.Event{Type: api.EventLog, MAC: "m1", Data: api.LogEvent{MAC: "m1", Seq: 1, Lines: []string{"x"}}})
	b.forward(api.Event{Type: api.EventProgress, MAC: "m2", Data: api.ProgressEvent{MAC: "m2"}})
	b.mu.Lock()
	evs := b.pending
	b.pending = nil
	b.mu.Unlock()
	b.send(context.Background(), evs)
	if len(f.published) != 1 {
		t.Fatalf("published %d batches, want 1", len(f.published))
	}
	got, err := api.DecodeEvents(f.published[0])
	if err != nil {
		t.Fatal(err)
	}
	// m1's five progress reports are one, the latest, in the place of
	// the first; the log batch and m2's follow.
	if len(got) != 3 || got[0].Data.(api.ProgressEvent).Attempt != 4 || got[1].Type != api.EventLog || got[2].MAC != "m2" {
		t.Fatalf("batch = %+v", got)
	}
	// A big batch is split under busBatchBytes.
	big := strings.Repeat("x", 200<<10)
	evs = nil
	for i := range 6 {
		evs = append(evs, api.Event{Type: api.EventLog, MAC: "m1", Data: api.LogEvent{MAC: "m1", Seq: i + 1, Lines: []string{big}}})
	}
	f.published = nil
	b.send(context.Background(), evs)
	n := 0
	for _, m := range f.published {
		if len(m) > busBatchBytes {
			t.Errorf("a batch of %d bytes", len(m))
		}
		evs, err := api.DecodeEvents(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			n++
			if ev.Data.(api.LogEvent).Seq != n {
				t.Fatalf("event %d out of order: seq %d", n, ev.Data.(api.LogEvent).Seq)
			}
		}
	}
	if n != 6 {
		t.Fatalf("%d events sent, want 6", n)
	}
}

func TestEventBusQueueBound(t *testing.T) {
	b := newEventBus(&fakeShared{Store: registry.NewMemory(), id: "a"}, nil, slog.New(slog.DiscardHandler))
	for i := range busQueue + 10 {
		b.forward(api.Event{Type: api.EventLog, MAC: "m", Data: api.LogEvent{Seq: i}})
	}
	if len(b.pending) != busQueue {
		t.Fatalf("queue holds %d, want the bound %d", len(b.pending), busQueue)
	}
}
