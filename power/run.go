package power

import (
	"context"
	"sync"
	"time"
)

// Job is one machine of a Run.
type Job struct {
	Key    string // the machine (its MAC), copied into its Result
	Target Target
}

// Result is the outcome of one Job.
type Result struct {
	Key     string
	Action  Action
	NetBoot bool
	State   State // last state read; StateUnknown on error
	Err     error // *Error or nil
	// Started is when the job left the queue (its BMC was first
	// contacted right after); Finished when Do returned. A job never
	// started (cancelled run) has both set to the time it was given up.
	Started, Finished time.Time
}

// Plan says how Run spreads a fleet's jobs. Its zero value means the
// defaults.
type Plan struct {
	// Concurrency bounds the machines in flight (default 8): each holds a
	// BMC session and, for Redfish, a TCP connection.
	Concurrency int
	// Stagger is the least time between the starts of consecutive jobs, so
	// that a rack does not draw the inrush current of all its machines at
	// once. 0 means no stagger.
	Stagger time.Duration
	Config  Config
}

// DefaultConcurrency is Plan.Concurrency's default.
const DefaultConcurrency = 8

// Run runs a on every job (with netboot as Do) and returns the results in
// jobs' order. Job i starts no earlier than Stagger after job i-1 started,
// and at most Concurrency jobs are in flight; a slow or broken BMC delays
// the others by no more than the slot it holds (each job is bounded by its
// Config). each, when not nil, is handed every result as it finishes, from
// one goroutine at a time. Cancelling ctx stops starting jobs: those
// never started get a KindTimeout error carrying ctx's error, and those
// running end early.
func Run(ctx context.Context, jobs []Job, a Action, netboot bool, p Plan, each func(Result)) []Result {
	if p.Concurrency <= 0 {
		p.Concurrency = DefaultConcurrency
	}
	results := make([]Result, len(jobs))
	var mu sync.Mutex // serialises each
	finish := func(i int, r Result) {
		results[i] = r
		if each != nil {
			mu.Lock()
			defer mu.Unlock()
			each(r)
		}
	}
	slots := make(chan struct{}, p.Concurrency)
	var wg sync.WaitGroup
	var lastStart time.Time
	for i, job := range jobs {
		err := wait(ctx, slots, lastStart, p.Stagger)
		if err != nil {
			now := time.Now()
			for j := i; j < len(jobs); j++ {
				finish(j, Result{
					Key: jobs[j].Key, Action: a, NetBoot: netboot, State: StateUnknown,
					Err:     &Error{Op: "power " + string(a), Kind: KindTimeout, Err: err},
					Started: now, Finished: now,
				})
			}
			break
		}
		lastStart = time.Now()
		wg.Add(1)
		go func(i int, job Job, started time.Time) {
			defer wg.Done()
			defer func() { <-slots }()
			r := Result{Key: job.Key, Action: a, NetBoot: netboot, Started: started}
			c, err := New(job.Target, p.Config)
			if err == nil {
				r.State, err = Do(ctx, c, a, netboot, p.Config)
			}
			if err != nil {
				if e, ok := err.(*Error); ok && e.Kind == KindConfig && e.Op == "power config" {
					err = &Error{Op: "power " + string(a), Kind: KindConfig, Err: e.Err}
				}
				r.State, r.Err = StateUnknown, err
			}
			r.Finished = time.Now()
			finish(i, r)
		}(i, job, lastStart)
	}
	wg.Wait()
	return results
}

// wait blocks until stagger has passed since last and a slot is free (it
// takes the slot), or ctx ends.
func wait(ctx context.Context, slots chan struct{}, last time.Time, stagger time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !last.IsZero() && stagger > 0 {
		if d := time.Until(last.Add(stagger)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case slots <- struct{}{}:
		return nil
	}
}
