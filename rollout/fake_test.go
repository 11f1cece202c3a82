package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rackboot/rackboot/registry"
)

// fakeEnv is a registry, a set of BMCs and a rollout store in memory. At
// a power cycle each machine does what outcome says: "ok" installs the
// version it is pending for, "fail" fails an attempt, "" (the default)
// does nothing, like a machine that never boots.
type fakeEnv struct {
	mu         sync.Mutex
	now        func() time.Time
	hosts      map[string]*fakeHost
	outcome    map[string]string
	powerErr   map[string]error
	reinstalls []string // MACs, in order
	reasons    map[string]string
	cycles     [][]string
	stored     map[string][]byte // rollouts as JSON, to prove they survive encoding
}

type fakeHost struct {
	rec      registry.HostRecord
	attempts []registry.Attempt
}

// newFakeEnv makes n hosts installed with v1, each with three attempts
// behind it.
func newFakeEnv(n int, now func() time.Time) (*fakeEnv, []string) {
	f := &fakeEnv{now: now, hosts: map[string]*fakeHost{}, outcome: map[string]string{}, powerErr: map[string]error{}, reasons: map[string]string{}, stored: map[string][]byte{}}
	var macs []string
	for i := range n {
		m := fmt.Sprintf("52:54:00:00:00:%02x", i+1)
		macs = append(macs, m)
		f.hosts[m] = &fakeHost{rec: registry.HostRecord{MAC: m, State: registry.StateInstalled, Version: registry.Version{Name: "v1", Number: 1}, LastID: 3}}
	}
	return f, macs
}

func (f *fakeEnv) Reinstall(ctx context.Context, mac, version, by, reason string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[mac]
	if !ok {
		return 0, errors.New("no such host")
	}
	f.reinstalls = append(f.reinstalls, mac)
	f.reasons[mac] = reason
	h.rec.State, h.rec.PendingVersion, h.rec.Attempt = registry.StatePending, version, 0
	return h.rec.LastID, nil
}

func (f *fakeEnv) PowerCycle(ctx context.Context, macs []string, by string) map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cycles = append(f.cycles, slices.Clone(macs))
	errs := map[string]error{}
	for _, m := range macs {
		if err := f.powerErr[m]; err != nil {
			errs[m] = err
			continue
		}
		switch f.outcome[m] {
		case "ok":
			f.installLocked(m)
		case "fail":
			f.failLocked(m)
		}
	}
	return errs
}

func (f *fakeEnv) installLocked(mac string) {
	h := f.hosts[mac]
	h.rec.LastID++
	h.rec.Attempt++
	v := registry.Version{Name: h.rec.PendingVersion, Number: 2}
	h.attempts = append(h.attempts, registry.Attempt{ID: h.rec.LastID, Number: h.rec.Attempt, MAC: mac, Version: v, Result: registry.ResultSuccess, Finished: f.now()})
	h.rec.State, h.rec.Version, h.rec.PendingVersion = registry.StateInstalled, v, ""
}

func (f *fakeEnv) failLocked(mac string) {
	h := f.hosts[mac]
	h.rec.LastID++
	h.rec.Attempt++
	h.attempts = append(h.attempts, registry.Attempt{ID: h.rec.LastID, Number: h.rec.Attempt, MAC: mac, Result: registry.ResultFailed, Phase: "write", Error: "disk on fire", Finished: f.now()})
	h.rec.State, h.rec.LastError = registry.StatePending, "write: disk on fire"
}

// install and fail end an attempt of a host that did nothing at its power
// cycle.
func (f *fakeEnv) install(macs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range macs {
		f.installLocked(m)
	}
}

func (f *fakeEnv) set(outcome string, macs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range macs {
		f.outcome[m] = outcome
	}
}

func (f *fakeEnv) Host(ctx context.Context, mac string, afterID int) (registry.HostRecord, []registry.Attempt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[mac]
	if !ok {
		return registry.HostRecord{}, nil, registry.ErrNotFound
	}
	var as []registry.Attempt
	for _, a := range h.attempts {
		if a.ID > afterID {
			as = append(as, a)
		}
	}
	return h.rec, as, nil
}

func (f *fakeEnv) Load(ctx context.Context) ([]Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []Rollout
	for _, b := range f.stored {
		var r Rollout
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func (f *fakeEnv) Save(ctx context.Context, r Rollout) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stored[r.ID] = b
	return nil
}

// calls returns copies of the reinstalled MACs and the power cycles.
func (f *fakeEnv) calls() (reinstalls []string, cycles [][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cycles {
		cycles = append(cycles, slices.Clone(c))
	}
	return slices.Clone(f.reinstalls), cycles
}

// clock is a fake clock, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// run runs e.Run until the test ends or stop is called.
func run(t *testing.T, e *Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitStatus waits until rollout id has status s and returns it.
func waitStatus(t *testing.T, e *Engine, id string, s Status) Rollout {
	t.Helper()
	var r Rollout
	waitFor(t, fmt.Sprintf("%s %s", id, s), func() bool {
		var err error
		r, err = e.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status == s
	})
	return r
}

// results returns each host's result.
func results(r Rollout) map[string]HostResult {
	m := map[string]HostResult{}
	for _, h := range r.Hosts {
		m[h.MAC] = h.Result
	}
	return m
}
