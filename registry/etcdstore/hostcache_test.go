package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
)

// event is a watch response of one change of the host cache's prefix "p/":
// a put of a record named name at rev, or (name "") a deletion.
func event(mac, name string, rev int64) clientv3.WatchResponse {
	ev := &clientv3.Event{Type: clientv3.EventTypeDelete, Kv: &mvccpb.KeyValue{Key: []byte("p/" + mac), ModRevision: rev}}
	if name != "" {
		b, _, err := registry.EncodeUpdate(mac, registry.HostRecord{MAC: mac, Hostname: name}, nil)
		if err != nil {
			panic(err)
		}
		ev.Type, ev.Kv.Value = clientv3.EventTypePut, b
	}
	return clientv3.WatchResponse{Header: &etcdserverpb.ResponseHeader{Revision: rev}, Events: []*clientv3.Event{ev}}
}

// TestHostCacheOrder: changes are kept by revision whatever the order in
// which the watch and the Store's own writes bring them, and a deletion is
// not undone by an older put arriving late.
func TestHostCacheOrder(t *testing.T) {
	const mac = "52:54:00:00:02:01"
	rec := func(name string) registry.HostRecord { return registry.HostRecord{MAC: mac, Hostname: name} }
	tests := []struct {
		name  string
		steps func(s *Store)
		want  string // the cached record's Hostname; "" for absent
	}{
		{"WatchPuts", func(s *Store) {
			s.applyEvents(event(mac, "one", 5), "p/")
			s.applyEvents(event(mac, "two", 6), "p/")
		}, "two"},
		{"OwnWriteBeforeItsEvent", func(s *Store) {
			s.hosts.put(mac, 7, rec("own"))
			s.applyEvents(event(mac, "older", 6), "p/")
			s.applyEvents(event(mac, "own", 7), "p/")
		}, "own"},
		{"OwnWriteAfterNewerEvents", func(s *Store) {
			s.applyEvents(event(mac, "newer", 8), "p/")
			s.hosts.put(mac, 7, rec("own"))
		}, "newer"},
		{"OwnDeleteThenLatePut", func(s *Store) {
			s.applyEvents(event(mac, "one", 5), "p/")
			s.hosts.remove(mac, 7)
			s.applyEvents(event(mac, "late", 6), "p/")
		}, ""},
		{"WatchDeleteThenLateOwnPut", func(s *Store) {
			s.applyEvents(event(mac, "", 7), "p/")
			s.hosts.put(mac, 6, rec("late"))
		}, ""},
		{"PutAfterDelete", func(s *Store) {
			s.hosts.remove(mac, 7)
			s.applyEvents(event(mac, "", 7), "p/")
			s.applyEvents(event(mac, "again", 8), "p/")
		}, "again"},
		{"LoadKeepsNewerOwnWrite", func(s *Store) {
			s.hosts.put(mac, 9, rec("own"))
			s.hosts.load(map[string]cachedHost{mac: {rev: 5, h: rec("snapshot")}}, 8)
		}, "own"},
		{"LoadKeepsNewerOwnDelete", func(s *Store) {
			s.hosts.remove(mac, 9)
			s.hosts.load(map[string]cachedHost{mac: {rev: 5, h: rec("snapshot")}}, 8)
		}, ""},
		{"LoadReplacesOlder", func(s *Store) {
			s.hosts.put(mac, 4, rec("own"))
			s.hosts.load(map[string]cachedHost{mac: {rev: 5, h: rec("snapshot")}}, 8)
		}, "snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Store{}
			s.hosts.setCurrent(true)
			tt.steps(s)
			h, found, ok, err := s.hosts.lookup(mac)
			if !ok || err != nil {
				t.Fatalf("lookup: ok %v, err %v", ok, err)
			}
			if found != (tt.want != "") || h.Hostname != tt.want {
				t.Errorf("cached %q (found %v), want %q", h.Hostname, found, tt.want)
			}
			s.hosts.mu.RLock()
			defer s.hosts.mu.RUnlock()
			for m, rev := range s.hosts.gone {
				if rev <= s.hosts.progress {
					t.Errorf("tombstone of %s at %d kept behind the watch's progress %d", m, rev, s.hosts.progress)
				}
			}
		})
	}
}

// TestHostCacheCopies: a caller's change to a returned record does not
// reach the cache.
func TestHostCacheCopies(t *testing.T) {
	const mac = "52:54:00:00:02:02"
	s := &Store{}
	s.hosts.setCurrent(true)
	s.hosts.put(mac, 1, registry.HostRecord{MAC: mac, Power: []registry.PowerAction{{}}, Token: &registry.Token{}})
	h, _, _, _ := s.hosts.lookup(mac)
	h.Power[0].Action = "changed"
	h.Token.SHA256 = "changed"
	again, _, _, _ := s.hosts.lookup(mac)
	if again.Power[0].Action != "" || again.Token.SHA256 != "" {
		t.Errorf("a change to a returned record reached the cache: %+v", again)
	}
}

// countingKV counts the reads of one key.
type countingKV struct {
	clientv3.KV
	key  string
	gets atomic.Int64
}

func (k *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if key == k.key {
		k.gets.Add(1)
	}
	return k.KV.Get(ctx, key, opts...)
}

// breakableWatcher is a clientv3.Watcher whose watches can be ended, and
// new ones refused (closed at once), on demand.
type breakableWatcher struct {
	clientv3.Watcher
	mu      sync.Mutex
	broken  bool
	cancels []context.CancelFunc
}

func (w *breakableWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	if w.broken {
		cancel()
	} else {
		w.cancels = append(w.cancels, cancel)
	}
	w.mu.Unlock()
	return w.Watcher.Watch(ctx, key, opts...)
}

// set breaks every watch and refuses new ones (broken), or lets them be.
func (w *breakableWatcher) set(broken bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.broken = broken
	if broken {
		for _, cancel := range w.cancels {
			cancel()
		}
		w.cancels = nil
	}
}

// warm starts s's host cache and waits until it is current.
func warm(t testing.TB, s *Store) {
	t.Helper()
	if _, err := s.Host(ctx, "00:00:00:00:00:00"); err != nil && !errors.Is(err, registry.ErrNotFound) {
		t.Fatal(err)
	}
	waitCurrent(t, s, true)
}

// waitCurrent waits until s's host cache is current (or not).
func waitCurrent(t testing.TB, s *Store, current bool) {
	t.Helper()
	for start := time.Now(); s.hosts.ready.Load() != current; time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("host cache current = %v after %v", !current, time.Since(start))
		}
	}
}

// rename sets the Hostname of mac's record through s.
func rename(t *testing.T, s *Store, mac, name string) {
	t.Helper()
	if _, err := s.Update(ctx, mac, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
		h.Hostname = name
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// eventually waits until s.Host(mac) has Hostname name ("" for absent).
func eventually(t *testing.T, s *Store, mac, name string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		h, err := s.Host(ctx, mac)
		switch {
		case errors.Is(err, registry.ErrNotFound) && name == "":
			return time.Since(start)
		case err != nil && !errors.Is(err, registry.ErrNotFound):
			t.Fatal(err)
		case err == nil && h.Hostname == name:
			return time.Since(start)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("Host(%s) = %q, %v after %v; want %q", mac, h.Hostname, err, time.Since(start), name)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// wantHost checks that s.Host(mac) has Hostname name ("" for absent) now.
func wantHost(t *testing.T, s *Store, mac, name string) {
	t.Helper()
	h, err := s.Host(ctx, mac)
	switch {
	case name == "" && !errors.Is(err, registry.ErrNotFound):
		t.Errorf("Host(%s) = %q, %v; want ErrNotFound", mac, h.Hostname, err)
	case name != "" && (err != nil || h.Hostname != name):
		t.Errorf("Host(%s) = %q, %v; want %q", mac, h.Hostname, err, name)
	}
}

// TestHostCacheShared: an appliance reads its own writes at once and
// another's within a short while, from its cache: no read of etcd.
func TestHostCacheShared(t *testing.T) {
	eps := etcdtest.Start(t)
	p := etcdtest.Prefix()
	a, b := open(t, eps, p, "a"), open(t, eps, p, "b")
	defer a.Close()
	defer b.Close()
	counter := &countingKV{KV: b.kv, key: b.hostKey(macA)}
	b.kv = counter
	warm(t, a)
	warm(t, b)

	rename(t, a, macA, "one")
	wantHost(t, a, macA, "one")
	t.Logf("b saw a's create after %v", eventually(t, b, macA, "one"))
	rename(t, a, macA, "two")
	wantHost(t, a, macA, "two")
	t.Logf("b saw a's update after %v", eventually(t, b, macA, "two"))
	rename(t, b, macA, "three")
	wantHost(t, b, macA, "three")
	eventually(t, a, macA, "three")

	gets := counter.gets.Load() // Update's own reads
	wantHost(t, b, macA, "three")
	wantHost(t, b, "52:54:00:00:09:09", "")
	if n := counter.gets.Load() - gets; n != 0 {
		t.Errorf("Host read etcd %d times with the cache current", n)
	}

	if ok, err := b.Delete(ctx, macA, func(registry.HostRecord) bool { return true }); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	wantHost(t, b, macA, "")
	t.Logf("a saw b's delete after %v", eventually(t, a, macA, ""))
}

// TestHostCacheFallback: while the watch is broken Host reads etcd, so it
// sees every write at once; the cache recovers when the watch can be opened
// again, and a closed store still answers errClosed.
func TestHostCacheFallback(t *testing.T) {
	eps := etcdtest.Start(t)
	p := etcdtest.Prefix()
	a, b := open(t, eps, p, "a"), open(t, eps, p, "b")
	defer b.Close()
	w := &breakableWatcher{Watcher: a.watcher}
	a.watcher = w
	counter := &countingKV{KV: a.kv, key: a.hostKey(macA)}
	a.kv = counter
	warm(t, a)
	rename(t, b, macA, "one")
	eventually(t, a, macA, "one")

	w.set(true)
	waitCurrent(t, a, false)
	for i := range 3 {
		name := fmt.Sprint("broken", i)
		rename(t, b, macA, name)
		gets := counter.gets.Load()
		wantHost(t, a, macA, name)
		if counter.gets.Load() == gets {
			t.Errorf("Host did not read etcd with the cache not current")
		}
	}

	// A deletion and a compaction while it was broken: the new watch
	// starts from a fresh read, past both.
	if ok, err := b.Delete(ctx, macA, func(registry.HostRecord) bool { return true }); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	r, err := b.kv.Get(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Compact(ctx, r.Header.Revision); err != nil {
		t.Fatal(err)
	}
	w.set(false)
	waitCurrent(t, a, true)
	gets := counter.gets.Load()
	wantHost(t, a, macA, "")
	if counter.gets.Load() != gets {
		t.Errorf("Host read etcd with the cache current again")
	}
	rename(t, b, macA, "back")
	eventually(t, a, macA, "back")

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Host(ctx, macA); !errors.Is(err, errClosed) {
		t.Errorf("Host on a closed store = %v, want errClosed", err)
	}
}

// BenchmarkHost: Host from the cache, and the etcd read it replaces.
func BenchmarkHost(b *testing.B) {
	s, err := Open(ctx, Config{Endpoints: etcdtest.Start(b), Prefix: etcdtest.Prefix(), ID: "a", LeaseTTL: testTTL})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
		h.Hostname, h.State = "node-01", registry.StateInstalling
		h.Token = &registry.Token{SHA256: "0123456789abcdef0123456789abcdef", Attempt: 1}
		return nil, nil
	}); err != nil {
		b.Fatal(err)
	}
	warm(b, s)
	for _, bm := range []struct {
		name string
		host func(context.Context, string) (registry.HostRecord, error)
	}{
		{"Cached", s.Host},
		{"Direct", s.readHost},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.host(ctx, macA); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
