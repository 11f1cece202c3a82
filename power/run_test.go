package power_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackboot/rackboot/power"
	"github.com/rackboot/rackboot/power/powertest"
)

// TestRunStagger: 10 machines, stagger 100 ms, 3 at a time. Starts are
// ≥ 100 ms apart (at the client and at the BMCs), never more than 3 run
// at once, each is called one at a time, results come in jobs' order.
func TestRunStagger(t *testing.T) {
	const n, stagger, conc = 10, 100 * time.Millisecond, 3
	jobs := make([]power.Job, n)
	bmcs := make([]*powertest.RedfishBMC, n)
	machines := make([]*powertest.FakeMachine, n)
	for i := range jobs {
		machines[i] = powertest.NewFakeMachine(false)
		// A slow BMC (25 ms a request, a dozen requests for on and one
		// status read): a job outlasts three staggers, so the concurrency
		// bound is what holds job 4 back.
		bmcs[i] = &powertest.RedfishBMC{User: user, Password: password, Delay: 25 * time.Millisecond,
			Systems: map[string]powertest.Machine{fmt.Sprint("node", i): machines[i]}}
		srv := httptest.NewServer(bmcs[i])
		t.Cleanup(srv.Close)
		jobs[i] = power.Job{Key: fmt.Sprintf("52:54:00:00:00:%02x", i),
			Target: power.Target{Protocol: "redfish", Address: srv.URL, Username: user, Password: password}}
	}
	var inEach, maxEach atomic.Int32
	var order []string
	plan := power.Plan{Concurrency: conc, Stagger: stagger, Config: power.Config{Timeout: 5 * time.Second, PollInterval: 20 * time.Millisecond}}
	results := power.Run(context.Background(), jobs, power.ActionOn, true, plan, func(r power.Result) {
		if v := inEach.Add(1); v > maxEach.Load() {
			maxEach.Store(v)
		}
		time.Sleep(2 * time.Millisecond)
		order = append(order, r.Key)
		inEach.Add(-1)
	})

	if len(results) != n || len(order) != n {
		t.Fatalf("%d results, %d callbacks; want %d", len(results), len(order), n)
	}
	if maxEach.Load() != 1 {
		t.Errorf("each ran %d at once", maxEach.Load())
	}
	for i, r := range results {
		if r.Key != jobs[i].Key || r.Err != nil || r.State != power.StateOn || r.Action != power.ActionOn || !r.NetBoot {
			t.Errorf("result %d: %+v", i, r)
		}
		if calls := machines[i].Calls(); len(calls) != 1 || calls[0].Op != "on" || !calls[0].NetBoot {
			t.Errorf("machine %d calls %+v, want one network-boot power on", i, calls)
		}
		if i > 0 {
			if gap := r.Started.Sub(results[i-1].Started); gap < stagger-10*time.Millisecond {
				t.Errorf("job %d started %s after job %d", i, gap, i-1)
			}
			// At the BMC the power-on arrives after the job's session setup,
			// whose latency varies from job to job: looser there.
			gap := bmcs[i].Log()[0].Time.Sub(bmcs[i-1].Log()[0].Time)
			if gap < stagger/2 {
				t.Errorf("machine %d powered on %s after machine %d", i, gap, i-1)
			}
		}
	}
	// Most machines in flight at once, from the results' intervals.
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, r := range results {
		edges = append(edges, edge{r.Started, +1}, edge{r.Finished, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.delta
		peak = max(peak, cur)
	}
	if peak > conc {
		t.Errorf("%d jobs in flight at once, want at most %d", peak, conc)
	}
	t.Logf("job 0 took %s; peak %d in flight", results[0].Finished.Sub(results[0].Started).Round(time.Millisecond), peak)
	if peak < conc {
		t.Errorf("at most %d jobs in flight: the test does not exercise the bound of %d", peak, conc)
	}
}

// TestRunBrokenFleet: broken BMCs (wrong password, closed port, hanging)
// beside good ones, over both protocols. Good machines succeed; each
// broken one has its own error; the whole run takes about one timeout.
func TestRunBrokenFleet(t *testing.T) {
	const timeout = time.Second
	type want struct {
		kind    power.Kind
		machine *powertest.FakeMachine
	}
	var jobs []power.Job
	wants := map[string]want{}
	add := func(key string, tg power.Target, kind power.Kind, m *powertest.FakeMachine) {
		jobs = append(jobs, power.Job{Key: key, Target: tg})
		wants[key] = want{kind, m}
	}
	for i := range 3 {
		m := powertest.NewFakeMachine(i%2 == 0)
		_, srv := redfishDouble(t, map[string]powertest.Machine{"n": m})
		add(fmt.Sprint("redfish-good-", i), power.Target{Protocol: "redfish", Address: srv.URL, Username: user, Password: password}, "", m)
	}
	for i := range 2 {
		m := powertest.NewFakeMachine(i%2 == 0)
		addr := powertest.ServeIPMI(t, &powertest.IPMIBMC{User: user, Password: password, Machine: m})
		add(fmt.Sprint("ipmi-good-", i), power.Target{Protocol: "ipmi", Address: addr, Username: user, Password: password}, "", m)
	}
	_, rf := redfishDouble(t, map[string]powertest.Machine{"n": powertest.NewFakeMachine(true)})
	ipmiAddr := powertest.ServeIPMI(t, &powertest.IPMIBMC{User: user, Password: password, Machine: powertest.NewFakeMachine(true)})
	add("redfish-wrong-pw", power.Target{Protocol: "redfish", Address: rf.URL, Username: user, Password: "nope"}, power.KindAuth, nil)
	add("ipmi-wrong-pw", power.Target{Protocol: "ipmi", Address: ipmiAddr, Username: user, Password: "nope"}, power.KindAuth, nil)
	add("redfish-closed", power.Target{Protocol: "redfish", Address: "http://" + powertest.ClosedTCP(t), Username: user, Password: password}, power.KindUnreachable, nil)
	add("ipmi-closed", power.Target{Protocol: "ipmi", Address: powertest.ClosedUDP(t), Username: user, Password: password}, power.KindUnreachable, nil)
	add("redfish-hang", power.Target{Protocol: "redfish", Address: "http://" + powertest.HangTCP(t), Username: user, Password: password}, power.KindTimeout, nil)
	add("ipmi-hang", power.Target{Protocol: "ipmi", Address: powertest.HangUDP(t), Username: user, Password: password}, power.KindTimeout, nil)
	add("no-protocol", power.Target{Address: "x", Username: user, Password: password}, power.KindConfig, nil)

	plan := power.Plan{Concurrency: 16, Config: power.Config{Timeout: timeout, Retries: -1, PollInterval: 10 * time.Millisecond}}
	start := time.Now()
	results := power.Run(context.Background(), jobs, power.ActionCycle, true, plan, nil)
	wall := time.Since(start)
	if wall > timeout+600*time.Millisecond {
		t.Errorf("fleet took %s, want about one timeout (%s)", wall, timeout)
	}
	for _, r := range results {
		w := wants[r.Key]
		if got := power.KindOf(r.Err); got != w.kind {
			t.Errorf("%s: kind %q, want %q (%v)", r.Key, got, w.kind, r.Err)
			continue
		}
		if r.Err != nil {
			if r.State != power.StateUnknown {
				t.Errorf("%s: state %s on error", r.Key, r.State)
			}
			t.Logf("%s: %s: %v", r.Key, r.Finished.Sub(r.Started).Round(time.Millisecond), r.Err)
			continue
		}
		if r.State != power.StateOn {
			t.Errorf("%s: state %s, want on", r.Key, r.State)
		}
		if calls := w.machine.Calls(); len(calls) != 1 || !calls[0].NetBoot {
			t.Errorf("%s: machine calls %+v, want one with a network boot", r.Key, calls)
		}
	}
	t.Logf("%d machines (%d broken) in %s", len(jobs), 7, wall.Round(time.Millisecond))
}

// TestRunCancel: cancelling stops starting jobs; those get a timeout error.
func TestRunCancel(t *testing.T) {
	var jobs []power.Job
	for i := range 5 {
		_, srv := redfishDouble(t, map[string]powertest.Machine{"n": powertest.NewFakeMachine(true)})
		jobs = append(jobs, power.Job{Key: fmt.Sprint(i), Target: power.Target{Protocol: "redfish", Address: srv.URL, Username: user, Password: password}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(250*time.Millisecond, cancel)
	var mu sync.Mutex
	seen := 0
	results := power.Run(ctx, jobs, power.ActionStatus, false, power.Plan{Stagger: 200 * time.Millisecond, Config: fast}, func(power.Result) {
		mu.Lock()
		seen++
		mu.Unlock()
	})
	for i, r := range results {
		started := i < 2
		if started && (r.Err != nil || r.State != power.StateOn) {
			t.Errorf("job %d: %+v, want on", i, r)
		}
		if !started && (power.KindOf(r.Err) != power.KindTimeout || !r.Started.Equal(r.Finished)) {
			t.Errorf("job %d: %+v, want never started, a timeout error", i, r)
		}
	}
	if seen != len(jobs) {
		t.Errorf("each saw %d results, want %d", seen, len(jobs))
	}
}
