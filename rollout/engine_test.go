package rollout

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// setup makes six hosts and an engine over them with a fake clock and a
// 5 ms poll; the spec starts as canary 2, waves of 2 (three waves).
func setup(t *testing.T) (*Engine, *fakeEnv, *clock, []string, Spec) {
	t.Helper()
	c := newClock()
	env, macs := newFakeEnv(6, c.Now)
	e := &Engine{Env: env, Now: c.Now, Poll: 5 * time.Millisecond}
	spec := Spec{Version: "v2", Hosts: macs, Canary: 2, WaveSize: 2, By: "alice", Reason: "kernel fix"}
	return e, env, c, macs, spec
}

func start(t *testing.T, e *Engine, spec Spec) Rollout {
	t.Helper()
	r, err := e.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHappyPath(t *testing.T) {
	e, env, _, macs, spec := setup(t)
	var mu sync.Mutex
	notified := 0
	e.Notify = func(Rollout) { mu.Lock(); notified++; mu.Unlock() }
	env.set("ok", macs...)
	run(t, e)
	r := start(t, e, spec)
	if r.ID != "r1" || r.Status != StatusRunning || r.Spec.WaveTimeout != DefaultWaveTimeout {
		t.Errorf("started: id %q, status %s, timeout %v", r.ID, r.Status, r.Spec.WaveTimeout)
	}
	r = waitStatus(t, e, r.ID, StatusDone)
	reinstalls, cycles := env.calls()
	if d := cmp.Diff(macs, reinstalls); d != "" {
		t.Errorf("reinstalls (-want +got):\n%s", d)
	}
	if d := cmp.Diff([][]string{macs[0:2], macs[2:4], macs[4:6]}, cycles); d != "" {
		t.Errorf("power cycles (-want +got):\n%s", d)
	}
	for _, h := range r.Hosts {
		if h.Result != ResultInstalled || h.Error != "" {
			t.Errorf("%s: %s %q", h.MAC, h.Result, h.Error)
		}
	}
	if got, want := env.reasons[macs[2]], "rollout r1 wave 2: kernel fix"; got != want {
		t.Errorf("reinstall reason %q, want %q", got, want)
	}
	if r.Wave != 2 || r.Reason != "" {
		t.Errorf("wave %d, reason %q", r.Wave, r.Reason)
	}
	if last := r.Events[len(r.Events)-1].Text; last != "done: 6 of 6 hosts installed v2" {
		t.Errorf("last event %q", last)
	}
	mu.Lock()
	defer mu.Unlock()
	if notified < 10 {
		t.Errorf("Notify called %d times", notified)
	}
}

func TestHaltThenResume(t *testing.T) {
	e, env, _, macs, spec := setup(t)
	env.set("ok", macs...)
	env.set("fail", macs[2:4]...)
	run(t, e)
	r := start(t, e, spec)
	r = waitStatus(t, e, r.ID, StatusHalted)
	if r.Wave != 1 {
		t.Errorf("halted at wave index %d, want 1", r.Wave)
	}
	want := "wave 2 had 2 failures (max 0): 52:54:00:00:00:03: attempt 4 failed: write: disk on fire; 52:54:00:00:00:04: attempt 4 failed: write: disk on fire"
	if r.Reason != want {
		t.Errorf("reason %q\nwant %q", r.Reason, want)
	}
	if got := r.Events[len(r.Events)-1].Text; got != "halted: wave 2 had 2 failures (max 0)" {
		t.Errorf("last event %q", got)
	}
	// Halted stays halted: wave 3 is never touched.
	time.Sleep(30 * time.Millisecond)
	reinstalls, cycles := env.calls()
	if d := cmp.Diff(macs[:4], reinstalls); d != "" {
		t.Errorf("reinstalls (-want +got):\n%s", d)
	}
	if d := cmp.Diff([][]string{macs[0:2], macs[2:4]}, cycles); d != "" {
		t.Errorf("power cycles (-want +got):\n%s", d)
	}
	if _, err := e.Pause(context.Background(), r.ID, "bob"); !errors.Is(err, ErrState) {
		t.Errorf("Pause of a halted rollout: %v, want ErrState", err)
	}

	// The image is fixed; resume retries wave 2's failed hosts.
	env.set("ok", macs[2:4]...)
	if _, err := e.Resume(context.Background(), r.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	r = waitStatus(t, e, r.ID, StatusDone)
	reinstalls, cycles = env.calls()
	if d := cmp.Diff([]string{macs[0], macs[1], macs[2], macs[3], macs[2], macs[3], macs[4], macs[5]}, reinstalls); d != "" {
		t.Errorf("reinstalls (-want +got):\n%s", d)
	}
	if d := cmp.Diff([][]string{macs[0:2], macs[2:4], macs[2:4], macs[4:6]}, cycles); d != "" {
		t.Errorf("power cycles (-want +got):\n%s", d)
	}
	for _, h := range r.Hosts {
		tries := 1
		if h.Wave == 1 {
			tries = 2
		}
		if h.Result != ResultInstalled || h.Tries != tries {
			t.Errorf("%s: %s %q, tries %d", h.MAC, h.Result, h.Error, h.Tries)
		}
	}
	if !hasEvent(r, "wave 2: its failed hosts started again: 2 hosts") {
		t.Errorf("no retry event")
	}
	if r.Reason != "" {
		t.Errorf("reason %q after resume", r.Reason)
	}
}

func TestMaxFailuresTolerated(t *testing.T) {
	e, env, _, macs, spec := setup(t)
	spec.MaxFailures = 1
	env.set("ok", macs...)
	env.set("fail", macs[3])
	env.powerErr[macs[5]] = errors.New("bmc unreachable")
	run(t, e)
	r := start(t, e, spec)
	r = waitStatus(t, e, r.ID, StatusDone)
	want := map[string]HostResult{macs[0]: ResultInstalled, macs[1]: ResultInstalled, macs[2]: ResultInstalled, macs[3]: ResultFailed, macs[4]: ResultInstalled, macs[5]: ResultFailed}
	if d := cmp.Diff(want, results(r)); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if h := r.Host(macs[5]); h.Error != "power cycle: bmc unreachable" {
		t.Errorf("power error %q", h.Error)
	}
	if h := r.Host(macs[3]); h.Error != "attempt 4 failed: write: disk on fire" {
		t.Errorf("attempt error %q", h.Error)
	}
	if last := r.Events[len(r.Events)-1].Text; last != "done: 4 of 6 hosts installed v2" {
		t.Errorf("last event %q", last)
	}
}

func TestPauseResume(t *testing.T) {
	e, env, _, macs, spec := setup(t)
	env.set("ok", macs[2:]...) // the canaries do nothing until installed below
	run(t, e)
	r := start(t, e, spec)
	waitFor(t, "canaries power-cycled", func() bool { _, c := env.calls(); return len(c) == 1 })
	if _, err := e.Pause(context.Background(), r.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pause(context.Background(), r.ID, "bob"); !errors.Is(err, ErrState) {
		t.Errorf("second Pause: %v, want ErrState", err)
	}
	// The canaries go on installing and are watched while paused.
	env.install(macs[0:2]...)
	waitFor(t, "canaries installed", func() bool {
		r, _ := e.Get(context.Background(), r.ID)
		res := results(r)
		return res[macs[0]] == ResultInstalled && res[macs[1]] == ResultInstalled
	})
	time.Sleep(30 * time.Millisecond)
	r, _ = e.Get(context.Background(), r.ID)
	if _, cycles := env.calls(); len(cycles) != 1 || r.Status != StatusPaused || r.Wave != 0 {
		t.Fatalf("paused: %d power cycles, status %s, wave %d", len(cycles), r.Status, r.Wave)
	}
	if _, err := e.Resume(context.Background(), r.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	r = waitStatus(t, e, r.ID, StatusDone)
	if _, cycles := env.calls(); len(cycles) != 3 {
		t.Errorf("%d power cycles, want 3", len(cycles))
	}
	var texts []string
	for _, ev := range r.Events {
		texts = append(texts, ev.Text)
	}
	all := strings.Join(texts, "\n")
	if !strings.Contains(all, "paused by bob") || !strings.Contains(all, "resumed by bob") {
		t.Errorf("events:\n%s", all)
	}
}

func TestAbort(t *testing.T) {
	e, env, _, macs, spec := setup(t)
	env.set("ok", macs[0]) // macs[1] never boots
	run(t, e)
	r := start(t, e, spec)
	waitFor(t, "first canary installed", func() bool {
		r, _ := e.Get(context.Background(), r.ID)
		return r.Host(macs[0]).Result == ResultInstalled
	})
	r, err := e.Abort(context.Background(), r.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusAborted || r.Reason != "aborted by bob" {
		t.Errorf("status %s, reason %q", r.Status, r.Reason)
	}
	want := "aborted by bob: no further wave; 1 host of wave 1 had not started installing and are left pending (they install at their next PXE boot): 52:54:00:00:00:02"
	if got := r.Events[len(r.Events)-1].Text; got != want {
		t.Errorf("event %q\nwant  %q", got, want)
	}
	// Final: nothing moves it, nothing more happens.
	env.install(macs[1])
	for _, f := range []func(context.Context, string, string) (Rollout, error){e.Pause, e.Resume, e.Abort} {
		if _, err := f(context.Background(), r.ID, "bob"); !errors.Is(err, ErrState) {
			t.Errorf("after abort: %v, want ErrState", err)
		}
	}
	time.Sleep(30 * time.Millisecond)
	if reinstalls, cycles := env.calls(); len(reinstalls) != 2 || len(cycles) != 1 {
		t.Errorf("%d reinstalls, %d cycles after abort", len(reinstalls), len(cycles))
	}
	if r, _ := e.Get(context.Background(), r.ID); r.Host(macs[1]).Result != ResultInstalling {
		t.Errorf("aborted host watched further: %s", r.Host(macs[1]).Result)
	}
	if _, err := e.Get(context.Background(), "r9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get r9: %v, want ErrNotFound", err)
	}
}

func TestRestartWatchesCycledWave(t *testing.T) {
	e, env, c, macs, spec := setup(t)
	env.set("ok", macs[2:]...)
	stop := run(t, e)
	r := start(t, e, spec)
	waitFor(t, "canaries installing", func() bool {
		r, _ := e.Get(context.Background(), r.ID)
		return r.Host(macs[0]).Result == ResultInstalling && r.Host(macs[1]).Result == ResultInstalling
	})
	stop()

	// The canaries install while the daemon is down; a new engine over
	// the same store goes on without cycling them again.
	env.install(macs[0:2]...)
	e2 := &Engine{Env: env, Now: c.Now, Poll: 5 * time.Millisecond}
	run(t, e2)
	r = waitStatus(t, e2, r.ID, StatusDone)
	reinstalls, cycles := env.calls()
	if d := cmp.Diff(macs, reinstalls); d != "" {
		t.Errorf("reinstalls (-want +got):\n%s", d)
	}
	if d := cmp.Diff([][]string{macs[0:2], macs[2:4], macs[4:6]}, cycles); d != "" {
		t.Errorf("power cycles (-want +got):\n%s", d)
	}
	r2 := start(t, e2, Spec{Version: "v3", Hosts: macs[:1], WaveSize: 1})
	if r2.ID != "r2" {
		t.Errorf("next ID %q, want r2", r2.ID)
	}
}

func TestRestartWhileCycling(t *testing.T) {
	e, env, c, macs, spec := setup(t)
	env.set("ok", macs[2:]...)
	// No Run: the rollout is stored, then made to look as if the daemon
	// stopped between saving "cycling" and asking the BMCs.
	r := start(t, e, spec)
	env.Reinstall(context.Background(), macs[0], "v2", "alice", "")
	env.Reinstall(context.Background(), macs[1], "v2", "alice", "")
	r.Hosts[0].Result, r.Hosts[0].Attempt = ResultCycling, 3
	r.Hosts[1].Result, r.Hosts[1].Attempt = ResultCycling, 3
	if err := env.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}

	e2 := &Engine{Env: env, Now: c.Now, Poll: 5 * time.Millisecond}
	run(t, e2)
	waitFor(t, "restart event", func() bool {
		r, _ := e2.Get(context.Background(), r.ID)
		return strings.HasPrefix(r.Events[len(r.Events)-1].Text, "restarted while 2 hosts of wave 1 were being power-cycled")
	})
	time.Sleep(30 * time.Millisecond)
	if _, cycles := env.calls(); len(cycles) != 0 {
		t.Fatalf("cycled again after a restart: %v", cycles)
	}
	env.install(macs[0:2]...)
	waitStatus(t, e2, r.ID, StatusDone)
	if _, cycles := env.calls(); !cmp.Equal([][]string{macs[2:4], macs[4:6]}, cycles) {
		t.Errorf("power cycles %v", cycles)
	}
}

func TestWaveTimeout(t *testing.T) {
	e, env, c, macs, spec := setup(t)
	env.set("ok", macs[0]) // macs[1] never boots
	run(t, e)
	r := start(t, e, spec)
	waitFor(t, "first canary installed", func() bool {
		r, _ := e.Get(context.Background(), r.ID)
		return r.Host(macs[0]).Result == ResultInstalled
	})
	c.Add(29 * time.Minute)
	time.Sleep(20 * time.Millisecond)
	if r, _ := e.Get(context.Background(), r.ID); r.Status != StatusRunning {
		t.Fatalf("status %s before the timeout", r.Status)
	}
	c.Add(time.Minute)
	r = waitStatus(t, e, r.ID, StatusHalted)
	if h := r.Host(macs[1]); h.Result != ResultFailed || h.Error != "not installed 30m0s after its power cycle (registry: pending)" {
		t.Errorf("%s: %s %q", h.MAC, h.Result, h.Error)
	}
}

func TestSoak(t *testing.T) {
	e, env, c, macs, spec := setup(t)
	spec.Soak = 10 * time.Minute
	env.set("ok", macs...)
	run(t, e)
	r := start(t, e, spec)
	waitFor(t, "wave 1 judged", func() bool { r, _ := e.Get(context.Background(), r.ID); return r.Wave == 1 })
	time.Sleep(20 * time.Millisecond)
	if _, cycles := env.calls(); len(cycles) != 1 {
		t.Fatalf("%d power cycles during the soak", len(cycles))
	}
	c.Add(10 * time.Minute)
	waitFor(t, "wave 2 judged", func() bool { r, _ := e.Get(context.Background(), r.ID); return r.Wave == 2 })
	c.Add(10 * time.Minute)
	waitStatus(t, e, r.ID, StatusDone)
}

func TestOverlapRefused(t *testing.T) {
	e, _, _, macs, _ := setup(t)
	ctx := context.Background()
	r1 := start(t, e, Spec{Version: "v2", Hosts: macs[0:3], WaveSize: 1})
	_, err := e.Start(ctx, Spec{Version: "v3", Hosts: macs[2:5], WaveSize: 1})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("overlapping Start: %v, want ErrConflict", err)
	}
	if want := "rollout: hosts already in a rollout: rollout r1 (running) holds 1 of these hosts: 52:54:00:00:00:03"; err.Error() != want {
		t.Errorf("err %q", err)
	}
	if _, err := e.Start(ctx, Spec{Version: "v3", Hosts: macs[3:6], WaveSize: 1}); err != nil {
		t.Errorf("disjoint Start: %v", err)
	}
	if _, err := e.Start(ctx, Spec{Version: "v3", Hosts: macs[0:1], WaveSize: 2, WavePercent: 5}); !errors.Is(err, ErrSpec) {
		t.Errorf("invalid Start: %v, want ErrSpec", err)
	}
	if _, err := e.Abort(ctx, r1.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, Spec{Version: "v3", Hosts: macs[0:3], WaveSize: 1}); err != nil {
		t.Errorf("Start over an aborted rollout's hosts: %v", err)
	}
	rs, err := e.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID+" "+string(r.Status))
	}
	if d := cmp.Diff([]string{"r1 aborted", "r2 running", "r3 running"}, ids); d != "" {
		t.Errorf("List (-want +got):\n%s", d)
	}
}

func TestReinstallRequestFails(t *testing.T) {
	e, env, _, macs, _ := setup(t)
	env.set("ok", macs...)
	run(t, e)
	unknown := "52:54:00:00:00:ff"
	r := start(t, e, Spec{Version: "v2", Hosts: []string{macs[0], unknown}, WaveSize: 2})
	r = waitStatus(t, e, r.ID, StatusHalted)
	if want := "wave 1 had 1 failure (max 0): 52:54:00:00:00:ff: reinstall request: no such host"; r.Reason != want {
		t.Errorf("reason %q\nwant %q", r.Reason, want)
	}
	if _, cycles := env.calls(); !cmp.Equal([][]string{macs[:1]}, cycles) {
		t.Errorf("power cycles %v", cycles)
	}
	if r.Host(macs[0]).Result != ResultInstalled {
		t.Errorf("%s: %s", macs[0], r.Host(macs[0]).Result)
	}
}

func hasEvent(r Rollout, text string) bool {
	for _, ev := range r.Events {
		if ev.Text == text {
			return true
		}
	}
	return false
}

func TestConcurrentControl(t *testing.T) {
	c := newClock()
	env, macs := newFakeEnv(20, c.Now)
	env.set("ok", macs...)
	e := &Engine{Env: env, Now: c.Now, Poll: time.Millisecond}
	run(t, e)
	r := start(t, e, Spec{Version: "v2", Hosts: macs, Canary: 1, WaveSize: 3})
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, f := range []func(context.Context, string, string) (Rollout, error){e.Pause, e.Resume} {
					if _, err := f(ctx, r.ID, "bob"); err != nil && !errors.Is(err, ErrState) {
						t.Error(err)
					}
				}
				e.List(ctx)
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	waitFor(t, "done", func() bool {
		r, _ := e.Get(ctx, r.ID)
		if r.Status == StatusPaused {
			e.Resume(ctx, r.ID, "carol")
		}
		return r.Status == StatusDone
	})
	close(stop)
	wg.Wait()
	reinstalls, cycles := env.calls()
	if d := cmp.Diff(macs, reinstalls); d != "" {
		t.Errorf("reinstalls (-want +got):\n%s", d)
	}
	want := [][]string{macs[0:1]}
	for i := 1; i < len(macs); i += 3 {
		want = append(want, macs[i:min(i+3, len(macs))])
	}
	if d := cmp.Diff(want, cycles); d != "" {
		t.Errorf("power cycles (-want +got):\n%s", d)
	}
}
