package rollout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rackboot/rackboot/registry"
)

// Run drives the running and paused rollouts until ctx ends, then returns
// nil once the steps under way have stopped. It first loads the stored
// rollouts (an error doing so is returned): a rollout that was running
// before a restart goes on from its saved state, watching its current wave
// without power-cycling again the hosts already cycled. Each rollout is
// driven by a goroutine of its own, so a slow BMC holds up only its
// rollout. Run may be called again after it returned (a new term as the leading
// appliance), never twice at once.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	// Loaded afresh: appliances sharing a store drive rollouts one at a
	// time, and one that leads again after another did must start from
	// what the other saved, not from what it held before.
	e.loaded = false
	err := e.loadLocked(ctx)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(e.poll())
	defer tick.Stop()
	for {
		for _, id := range e.claim() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer e.release(id)
				for ctx.Err() == nil && e.step(ctx, id) {
				}
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-e.kicks():
		}
	}
}

// claim marks the running and paused rollouts that no goroutine drives as
// driven, and returns their IDs.
func (e *Engine) claim() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for _, id := range e.idsLocked() {
		if s := e.all[id].Status; (s == StatusRunning || s == StatusPaused) && !e.busy[id] {
			e.busy[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

func (e *Engine) release(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.busy, id)
}

// step moves rollout id on by one thing: it looks at the watched hosts of
// the current wave, or starts the wave's waiting hosts, or judges the
// wave. It reports whether it changed the rollout, that is whether another
// step may have something to do at once.
func (e *Engine) step(ctx context.Context, id string) bool {
	r, err := e.Get(ctx, id)
	if err != nil || (r.Status != StatusRunning && r.Status != StatusPaused) {
		return false
	}
	hosts := r.wave(r.Wave)
	var waiting []string
	watched, decided := false, true
	for _, h := range hosts {
		watched = watched || h.Result.watched()
		decided = decided && h.Result.decided()
		if h.Result == ResultWaiting {
			waiting = append(waiting, h.MAC)
		}
	}
	switch {
	case watched:
		return e.watch(ctx, r, hosts)
	case r.Status != StatusRunning:
		return false
	case len(waiting) > 0:
		if e.now().Before(r.Next) {
			return false
		}
		return e.start(ctx, r, waiting)
	case decided:
		return e.judge(ctx, id)
	}
	return false
}

// start starts the hosts waiting in the current wave of r: a reinstall
// request for each, then one power cycle of all. Their being cycled is
// saved before the BMCs are asked, so that a restart in between watches
// them rather than cycling them twice; a host that was in fact not cycled
// then fails by WaveTimeout, which is the safe side.
func (e *Engine) start(ctx context.Context, r Rollout, macs []string) bool {
	reason := fmt.Sprintf("rollout %s wave %d", r.ID, r.Wave+1)
	if r.Spec.Reason != "" {
		reason += ": " + r.Spec.Reason
	}
	type reinstalled struct {
		lastID int
		err    error
	}
	done := make(map[string]reinstalled, len(macs))
	for _, m := range macs {
		id, err := e.Env.Reinstall(ctx, m, r.Spec.Version, r.Spec.By, reason)
		if ctx.Err() != nil {
			// Reinstalled or not, the hosts are still waiting: the next
			// run asks again, which changes nothing for a pending host.
			return false
		}
		if err != nil {
			e.log().Error("reinstall request failed", "rollout", r.ID, "mac", m, "err", err)
		}
		done[m] = reinstalled{id, err}
	}
	var cycle []string
	if !e.update(ctx, r.ID, func(n *Rollout, now time.Time) bool {
		if n.Status == StatusAborted {
			var left []string
			for _, m := range macs {
				if done[m].err == nil {
					left = append(left, m)
				}
			}
			e.eventLocked(n, now, fmt.Sprintf("wave %d: %s reinstalled as the rollout was aborted are left pending, not power-cycled: %s", n.Wave+1, count(len(left), "host"), list(left, 10)))
			return true
		}
		if n.Wave != r.Wave || (n.Status != StatusRunning && n.Status != StatusPaused) {
			return false
		}
		var failed []string
		retry := false
		for _, m := range macs {
			h := n.Host(m)
			if h == nil || h.Result != ResultWaiting {
				continue
			}
			retry = retry || h.Tries > 0
			h.Tries++
			if err := done[m].err; err != nil {
				h.Result, h.Error, h.Since = ResultFailed, "reinstall request: "+err.Error(), now
				failed = append(failed, m)
				continue
			}
			h.Result, h.Attempt, h.Error, h.Since = ResultCycling, done[m].lastID, "", now
			cycle = append(cycle, m)
		}
		text := fmt.Sprintf("wave %d started: %s", n.Wave+1, count(len(macs), "host"))
		if retry {
			text = fmt.Sprintf("wave %d: its failed hosts started again: %s", n.Wave+1, count(len(macs), "host"))
		}
		if len(failed) > 0 {
			text += fmt.Sprintf("; the reinstall request failed for %s: %s", count(len(failed), "host"), list(failed, 10))
		}
		e.eventLocked(n, now, text)
		return true
	}) {
		return false
	}
	if len(cycle) == 0 {
		// Every reinstall request failed (or the rollout was aborted
		// meanwhile): the next step judges the wave.
		return true
	}
	// The hosts' power records name the rollout, and who started it.
	who := "rollout " + r.ID
	if r.Spec.By != "" {
		who += " (started by " + r.Spec.By + ")"
	}
	errs := e.Env.PowerCycle(ctx, cycle, who)
	if ctx.Err() != nil {
		// The hosts stay cycling: the next run watches them.
		return false
	}
	return e.update(ctx, r.ID, func(n *Rollout, now time.Time) bool {
		var failed []string
		cycled := 0
		for _, m := range cycle {
			h := n.Host(m)
			if h == nil || h.Result != ResultCycling {
				continue
			}
			if err := errs[m]; err != nil {
				h.Result, h.Error, h.Since = ResultFailed, "power cycle: "+err.Error(), now
				failed = append(failed, m+" ("+err.Error()+")")
				continue
			}
			h.Result, h.Since = ResultInstalling, now
			cycled++
		}
		text := fmt.Sprintf("wave %d: %s power-cycled", n.Wave+1, count(cycled, "host"))
		if len(failed) > 0 {
			text += fmt.Sprintf("; the power cycle failed for %s: %s", count(len(failed), "host"), list(failed, 10))
		}
		e.eventLocked(n, now, text)
		return true
	})
}

// verdict is what the registry says of one watched host.
type verdict struct {
	result HostResult
	err    string
}

// watch looks at each watched host of the current wave in the registry and
// records those that installed or failed.
func (e *Engine) watch(ctx context.Context, r Rollout, hosts []*Host) bool {
	found := make(map[string]verdict)
	for _, h := range hosts {
		if !h.Result.watched() {
			continue
		}
		rec, attempts, err := e.Env.Host(ctx, h.MAC, h.Attempt)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			// A store failure says nothing of the host: ask again at the
			// next poll.
			e.log().Error("registry read failed", "rollout", r.ID, "mac", h.MAC, "err", err)
			continue
		}
		if v, ok := judgeHost(r.Spec, *h, rec, attempts, e.now()); ok {
			found[h.MAC] = v
		}
	}
	if len(found) == 0 {
		return false
	}
	return e.update(ctx, r.ID, func(n *Rollout, now time.Time) bool {
		if n.Status != StatusRunning && n.Status != StatusPaused {
			return false
		}
		installed := 0
		var failed []string
		for m, v := range found {
			h := n.Host(m)
			if h == nil || !h.Result.watched() {
				continue
			}
			h.Result, h.Error, h.Since = v.result, v.err, now
			if v.result == ResultFailed {
				failed = append(failed, m+" ("+v.err+")")
			} else {
				installed++
			}
		}
		if installed+len(failed) == 0 {
			return false
		}
		var parts []string
		if installed > 0 {
			parts = append(parts, count(installed, "host")+" installed")
		}
		if len(failed) > 0 {
			parts = append(parts, fmt.Sprintf("%s failed: %s", count(len(failed), "host"), list(failed, 10)))
		}
		e.eventLocked(n, now, fmt.Sprintf("wave %d: %s", n.Wave+1, strings.Join(parts, "; ")))
		return true
	})
}

// judgeHost decides a watched host from its record and its attempts since
// its reinstall request, in this order: the first of those attempts that
// failed fails it (a host that needs a second try is not healthy, whatever
// the registry's MaxAttempts allows); a failed record fails it; a record
// installed with the rollout's version by one of those attempts installs
// it; past WaveTimeout it fails. ok is false while it is undecided.
func judgeHost(spec Spec, h Host, rec registry.HostRecord, attempts []registry.Attempt, now time.Time) (v verdict, ok bool) {
	succeeded := false
	for _, a := range attempts {
		if a.ID <= h.Attempt {
			continue
		}
		switch a.Result {
		case registry.ResultFailed:
			msg := a.Error
			if a.Phase != "" {
				msg = a.Phase + ": " + msg
			}
			return verdict{ResultFailed, fmt.Sprintf("attempt %d failed: %s", a.ID, msg)}, true
		case registry.ResultSuccess:
			succeeded = true
		}
	}
	switch {
	case rec.State == registry.StateFailed:
		why := rec.Reason
		if why == "" {
			why = rec.LastError
		}
		return verdict{ResultFailed, "registry: failed: " + why}, true
	case rec.State == registry.StateInstalled && rec.Version.Name == spec.Version && succeeded:
		return verdict{ResultInstalled, ""}, true
	case now.Sub(h.Since) >= spec.WaveTimeout:
		return verdict{ResultFailed, fmt.Sprintf("not installed %v after its power cycle (registry: %s)", spec.WaveTimeout, rec.State)}, true
	}
	return verdict{}, false
}

// judge ends the current wave once all its hosts are decided: more failed
// hosts than Spec.MaxFailures halt the rollout; otherwise the next wave
// starts after Spec.Soak, or the rollout is done.
func (e *Engine) judge(ctx context.Context, id string) bool {
	return e.update(ctx, id, func(n *Rollout, now time.Time) bool {
		if n.Status != StatusRunning {
			return false
		}
		var failed []string
		for _, h := range n.wave(n.Wave) {
			switch {
			case !h.Result.decided():
				return false
			case h.Result == ResultFailed:
				failed = append(failed, h.MAC+": "+h.Error)
			}
		}
		w := n.Wave + 1
		switch {
		case len(failed) > n.Spec.MaxFailures:
			n.Status = StatusHalted
			n.Reason = fmt.Sprintf("wave %d had %s (max %d): %s", w, count(len(failed), "failure"), n.Spec.MaxFailures, strings.Join(failed, "; "))
			e.eventLocked(n, now, fmt.Sprintf("halted: wave %d had %s (max %d)", w, count(len(failed), "failure"), n.Spec.MaxFailures))
		case w == len(n.Waves):
			n.Status = StatusDone
			installed := 0
			for _, h := range n.Hosts {
				if h.Result == ResultInstalled {
					installed++
				}
			}
			e.eventLocked(n, now, fmt.Sprintf("done: %d of %d hosts installed %s", installed, len(n.Hosts), n.Spec.Version))
		default:
			n.Wave++
			n.Next = now.Add(n.Spec.Soak)
			text := fmt.Sprintf("wave %d healthy: %s (max %d)", w, count(len(failed), "failure"), n.Spec.MaxFailures)
			if n.Spec.Soak > 0 {
				text += fmt.Sprintf("; wave %d starts after a soak of %v, at %s", w+1, n.Spec.Soak, n.Next.Format(time.RFC3339))
			}
			e.eventLocked(n, now, text)
		}
		return true
	})
}
