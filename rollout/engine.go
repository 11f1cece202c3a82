package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rackboot/rackboot/registry"
)

// Errors of the Engine's methods, checked with errors.Is.
var (
	// ErrNotFound: no rollout has that ID.
	ErrNotFound = errors.New("rollout: not found")
	// ErrState: the rollout's status does not allow the request (pausing
	// a done rollout, resuming a running one).
	ErrState = errors.New("rollout: wrong status")
	// ErrConflict: another running, paused or halted rollout holds some
	// of the hosts.
	ErrConflict = errors.New("rollout: hosts already in a rollout")
)

// DefaultPoll is Engine.Poll when it is zero.
const DefaultPoll = 2 * time.Second

// Env is what the engine drives: the registry, the machines' BMCs and the
// store of rollouts. cmd/rackboot implements it. Its methods may be called
// from several goroutines at once (one per rollout being driven, and the
// Engine's callers), never while the Engine holds its lock, except Save.
type Env interface {
	// Reinstall marks mac pending for version (a registry reinstall with
	// by and reason) and returns the host record's LastID before the
	// request: the attempts after it are the rollout's.
	Reinstall(ctx context.Context, mac, version, by, reason string) (lastID int, err error)
	// PowerCycle sets a one-time network boot and power-cycles macs, with
	// the configured stagger, and returns an error for each mac that
	// failed (a missing or nil entry means it was cycled). by is who the
	// power records name: "rollout r1 (started by …)".
	PowerCycle(ctx context.Context, macs []string, by string) map[string]error
	// Host returns mac's registry record and its attempts with an ID
	// greater than afterID, oldest first.
	Host(ctx context.Context, mac string, afterID int) (registry.HostRecord, []registry.Attempt, error)
	// Load returns every stored rollout.
	Load(ctx context.Context) ([]Rollout, error)
	// Save stores r, replacing the rollout with its ID. It is called with
	// the Engine's lock held, so saves reach the store in the order of
	// the changes; it must not call the Engine.
	Save(ctx context.Context, r Rollout) error
}

// Engine runs staged rollouts: Start, Pause, Resume and Abort change them
// (from API handlers, at any time) and Run drives them. Every change is
// saved through Env.Save before the engine acts on it, so a rollout
// survives a restart of the daemon. Set the fields before first use; an
// Engine is safe for concurrent use.
type Engine struct {
	// Env is what the engine drives. Required.
	Env Env
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives the events of every rollout and the errors of Env.
	// Nil discards.
	Log *slog.Logger
	// Poll is how often the hosts of a wave are looked at in the
	// registry. Zero means DefaultPoll.
	Poll time.Duration
	// Notify, if set, is called with a copy of a rollout after each
	// successful save of it, for live views. It runs with the Engine's
	// lock held: it must not block nor call the Engine.
	Notify func(Rollout)

	mu       sync.Mutex
	loaded   bool
	all      map[string]*Rollout
	seq      int             // the greatest number of an ID
	busy     map[string]bool // rollouts being driven by Run
	kickOnce sync.Once
	kick     chan struct{}
}

// Start validates spec, plans its waves and stores a new running rollout,
// which Run starts driving at once. It refuses (ErrConflict) when a
// running, paused or halted rollout holds any of the hosts, and wraps
// ErrSpec when Plan does.
func (e *Engine) Start(ctx context.Context, spec Spec) (Rollout, error) {
	waves, err := Plan(spec)
	if err != nil {
		return Rollout{}, err
	}
	spec = spec.withDefaults()
	spec.Hosts = slices.Concat(waves...)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.loadLocked(ctx); err != nil {
		return Rollout{}, err
	}
	for _, id := range e.idsLocked() {
		o := e.all[id]
		if !o.Status.Active() {
			continue
		}
		var shared []string
		for _, m := range spec.Hosts {
			if o.Host(m) != nil {
				shared = append(shared, m)
			}
		}
		if len(shared) > 0 {
			return Rollout{}, fmt.Errorf("%w: rollout %s (%s) holds %d of these hosts: %s", ErrConflict, o.ID, o.Status, len(shared), list(shared, 5))
		}
	}
	now := e.now()
	r := Rollout{ID: "r" + strconv.Itoa(e.seq+1), Spec: spec, Status: StatusRunning, Waves: waves, Created: now, Updated: now}
	for w, macs := range waves {
		for _, m := range macs {
			r.Hosts = append(r.Hosts, Host{MAC: m, Wave: w, Result: ResultWaiting, Since: now})
		}
	}
	e.eventLocked(&r, now, fmt.Sprintf("started%s: %s in %s to version %s (%s)", by(spec.By), count(len(spec.Hosts), "host"), count(len(waves), "wave"), spec.Version, shape(spec, waves)))
	if err := e.Env.Save(ctx, r); err != nil {
		return Rollout{}, fmt.Errorf("rollout: save %s: %w", r.ID, err)
	}
	e.seq++
	e.all[r.ID] = &r
	e.notifyLocked(r)
	e.wake()
	return r.clone(), nil
}

// shape describes the waves of spec for the start event.
func shape(spec Spec, waves [][]string) string {
	var b strings.Builder
	if spec.Canary > 0 {
		fmt.Fprintf(&b, "canary %d, ", spec.Canary)
	}
	if spec.WavePercent > 0 {
		fmt.Fprintf(&b, "waves of %d%%", spec.WavePercent)
	} else {
		fmt.Fprintf(&b, "waves of %d", spec.WaveSize)
	}
	fmt.Fprintf(&b, ", max %d failures a wave, timeout %v", spec.MaxFailures, spec.WaveTimeout)
	if spec.Soak > 0 {
		fmt.Fprintf(&b, ", soak %v", spec.Soak)
	}
	return b.String()
}

// Pause stops a running rollout before its next wave: the current wave's
// hosts go on installing and are watched, but the wave is judged (and the
// next one started) only after Resume.
func (e *Engine) Pause(ctx context.Context, id, who string) (Rollout, error) {
	return e.change(ctx, id, func(r *Rollout, now time.Time) error {
		if r.Status != StatusRunning {
			return fmt.Errorf("%w: %s is %s, only a running rollout can be paused", ErrState, r.ID, r.Status)
		}
		r.Status = StatusPaused
		e.eventLocked(r, now, "paused"+by(who))
		return nil
	})
}

// Resume sets a paused or halted rollout running again. A halted rollout
// retries its halted wave: the wave's failed hosts are reinstalled and
// power-cycled again, and the wave is judged again once they are decided.
func (e *Engine) Resume(ctx context.Context, id, who string) (Rollout, error) {
	r, err := e.change(ctx, id, func(r *Rollout, now time.Time) error {
		switch r.Status {
		case StatusPaused:
			r.Status = StatusRunning
			e.eventLocked(r, now, "resumed"+by(who))
		case StatusHalted:
			var retry []string
			for _, h := range r.wave(r.Wave) {
				if h.Result == ResultFailed {
					h.Result, h.Error, h.Since = ResultWaiting, "", now
					retry = append(retry, h.MAC)
				}
			}
			r.Status, r.Reason, r.Next = StatusRunning, "", time.Time{}
			e.eventLocked(r, now, fmt.Sprintf("resumed%s: the failed hosts of wave %d are reinstalled and power-cycled again (%s): %s", by(who), r.Wave+1, count(len(retry), "host"), list(retry, 10)))
		default:
			return fmt.Errorf("%w: %s is %s, only a paused or halted rollout can be resumed", ErrState, r.ID, r.Status)
		}
		return nil
	})
	if err == nil {
		e.wake()
	}
	return r, err
}

// Abort ends a running, paused or halted rollout for good: no further wave
// starts and its hosts are no longer watched. Reinstall requests are not
// undone: hosts of the current wave that have not started installing stay
// pending and install at their next PXE boot, and the event says which.
func (e *Engine) Abort(ctx context.Context, id, who string) (Rollout, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return Rollout{}, err
	}
	// Which hosts of the wave the registry has pending, read before the
	// lock is taken: Env may be slow.
	var pending, unread []string
	if r.Status.Active() {
		for _, h := range r.wave(r.Wave) {
			if h.Result == ResultWaiting || h.Result == ResultInstalled {
				continue
			}
			rec, _, err := e.Env.Host(ctx, h.MAC, h.Attempt)
			switch {
			case err != nil:
				unread = append(unread, h.MAC)
			case rec.State == registry.StatePending:
				pending = append(pending, h.MAC)
			}
		}
	}
	return e.change(ctx, id, func(r *Rollout, now time.Time) error {
		if !r.Status.Active() {
			return fmt.Errorf("%w: %s is %s, only a running, paused or halted rollout can be aborted", ErrState, r.ID, r.Status)
		}
		r.Status, r.Reason = StatusAborted, "aborted"+by(who)
		text := fmt.Sprintf("aborted%s: no further wave", by(who))
		if len(pending) > 0 {
			text += fmt.Sprintf("; %s of wave %d had not started installing and are left pending (they install at their next PXE boot): %s", count(len(pending), "host"), r.Wave+1, list(pending, 10))
		}
		if len(unread) > 0 {
			text += fmt.Sprintf("; the registry could not be read for %s of wave %d, which may be left pending: %s", count(len(unread), "host"), r.Wave+1, list(unread, 10))
		}
		e.eventLocked(r, now, text)
		return nil
	})
}

// List returns every rollout, oldest first.
func (e *Engine) List(ctx context.Context) ([]Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.loadLocked(ctx); err != nil {
		return nil, err
	}
	var rs []Rollout
	for _, id := range e.idsLocked() {
		rs = append(rs, e.all[id].clone())
	}
	return rs, nil
}

// Get returns the rollout id, or an error wrapping ErrNotFound.
func (e *Engine) Get(ctx context.Context, id string) (Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.loadLocked(ctx); err != nil {
		return Rollout{}, err
	}
	r, ok := e.all[id]
	if !ok {
		return Rollout{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r.clone(), nil
}

// change applies fn to a copy of rollout id and saves it; the Engine's
// copy is replaced only once the save succeeded. fn's error is returned
// as it is, with nothing saved.
func (e *Engine) change(ctx context.Context, id string, fn func(r *Rollout, now time.Time) error) (Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.loadLocked(ctx); err != nil {
		return Rollout{}, err
	}
	cur, ok := e.all[id]
	if !ok {
		return Rollout{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	next := cur.clone()
	now := e.now()
	if err := fn(&next, now); err != nil {
		return Rollout{}, err
	}
	if err := e.saveLocked(ctx, next, now); err != nil {
		return Rollout{}, err
	}
	return next.clone(), nil
}

// update is change for Run's steps: fn reports whether it changed
// anything, and a failed save is logged (the step is tried again at the
// next poll).
func (e *Engine) update(ctx context.Context, id string, fn func(r *Rollout, now time.Time) bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur, ok := e.all[id]
	if !ok {
		return false
	}
	next := cur.clone()
	now := e.now()
	if !fn(&next, now) {
		return false
	}
	if err := e.saveLocked(ctx, next, now); err != nil {
		if ctx.Err() == nil {
			e.log().Error("rollout not saved, retrying at the next poll", "rollout", id, "err", err)
		}
		return false
	}
	return true
}

func (e *Engine) saveLocked(ctx context.Context, r Rollout, now time.Time) error {
	r.Updated = now
	if err := e.Env.Save(ctx, r); err != nil {
		return fmt.Errorf("rollout: save %s: %w", r.ID, err)
	}
	e.all[r.ID] = &r
	e.notifyLocked(r)
	return nil
}

func (e *Engine) notifyLocked(r Rollout) {
	if e.Notify != nil {
		e.Notify(r.clone())
	}
}

// loadLocked reads the stored rollouts once. Hosts of an active rollout
// found cycling were being power-cycled when the daemon stopped: they are
// treated as cycled and watched, never cycled a second time (a machine
// already installing would lose its attempt).
func (e *Engine) loadLocked(ctx context.Context) error {
	if e.loaded {
		return nil
	}
	rs, err := e.Env.Load(ctx)
	if err != nil {
		return fmt.Errorf("rollout: load: %w", err)
	}
	e.all = make(map[string]*Rollout, len(rs))
	e.busy = make(map[string]bool)
	now := e.now()
	for _, r := range rs {
		r = r.clone()
		if n, err := strconv.Atoi(strings.TrimPrefix(r.ID, "r")); err == nil && n > e.seq {
			e.seq = n
		}
		e.all[r.ID] = &r
		if !r.Status.Active() {
			continue
		}
		var cycled []string
		for i := range r.Hosts {
			if h := &r.Hosts[i]; h.Result == ResultCycling {
				h.Result = ResultInstalling
				cycled = append(cycled, h.MAC)
			}
		}
		if len(cycled) == 0 {
			continue
		}
		e.eventLocked(&r, now, fmt.Sprintf("restarted while %s of wave %d were being power-cycled: they are watched as cycled, not cycled again: %s", count(len(cycled), "host"), r.Wave+1, list(cycled, 10)))
		// A failed save costs nothing: the same conversion is made at the
		// next load.
		if err := e.saveLocked(ctx, r, now); err != nil {
			e.log().Error("rollout not saved", "rollout", r.ID, "err", err)
		}
	}
	e.loaded = true
	return nil
}

// idsLocked returns the IDs of the rollouts, oldest first.
func (e *Engine) idsLocked() []string {
	ids := make([]string, 0, len(e.all))
	for id := range e.all {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := len(a) - len(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return ids
}

// eventLocked adds an event to r and logs it.
func (e *Engine) eventLocked(r *Rollout, now time.Time, text string) {
	r.event(now, text)
	e.log().Info("rollout event", "rollout", r.ID, "version", r.Spec.Version, "event", text)
}

func (e *Engine) wake() {
	select {
	case e.kicks() <- struct{}{}:
	default:
	}
}

func (e *Engine) kicks() chan struct{} {
	e.kickOnce.Do(func() { e.kick = make(chan struct{}, 1) })
	return e.kick
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Engine) poll() time.Duration {
	if e.Poll > 0 {
		return e.Poll
	}
	return DefaultPoll
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// by returns " by who", or "" when who is empty.
func by(who string) string {
	if who == "" {
		return ""
	}
	return " by " + who
}

// count returns "1 host", "2 hosts".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// list joins at most n items, saying how many more there are.
func list(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
