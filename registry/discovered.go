package registry

import (
	"context"
	"sync"
	"time"
)

// Discovered records are bounded (docs/DESIGN.md, "Discovered records"):
// with discovery on, any MAC on the boot network creates one, so a flood of
// random MACs would otherwise grow the store without limit. Three things
// bound them: a cap (MaxDiscovered), at which a new unknown MAC evicts the
// least recently seen discovered record; an expiry (DiscoveredTTL) that
// Sweep applies; and ForgetDiscovered, the admin's `rackboot hosts --state
// discovered --forget`. Only records that are discovered and have no
// attempt are ever removed this way: a host of the profiles, or one with
// install history, never is.

// Defaults of the bound on discovered records.
const (
	// DefaultMaxDiscovered is the most discovered records kept. A rack
	// of unknown machines is tens to hundreds; 1,024 records of ~250 bytes
	// are a few hundred KiB of store and list in two pages of /api/hosts.
	DefaultMaxDiscovered = 1024
	// DefaultDiscoveredTTL is how long a discovered record that is not
	// seen again is kept: a day leaves an admin time to see what booted
	// overnight, and a machine that keeps booting keeps its record.
	DefaultDiscoveredTTL = 24 * time.Hour
	// SweepInterval is how often the daemon runs Sweep.
	SweepInterval = 10 * time.Minute
	// burstLogEvery spaces the log lines about evictions at the cap: the
	// first eviction of a burst is logged at once, the rest are counted
	// into one line at most this often (and by Sweep).
	burstLogEvery = time.Minute
)

// Why discovered records are removed, for Registry.OnForget.
const (
	ForgetCap     = "cap"     // evicted at the cap by a new unknown MAC
	ForgetExpired = "expired" // not seen for DiscoveredTTL
	ForgetAdmin   = "admin"   // ForgetDiscovered
)

// discoveredIndex is the registry's view of its discovered records: when
// each was first and last seen. It is loaded from the store at first use
// (and again by every Sweep, which keeps it exact if another writer shares
// the store) and kept current by Boot, Reinstall and the removals.
type discoveredIndex struct {
	mu     sync.Mutex
	loaded bool
	m      map[string]seen
	burst  int       // evictions not yet logged
	logged time.Time // when the last eviction line was written
}

type seen struct{ since, last time.Time }

// forgettable is what may be removed as a discovered record: discovered,
// with no attempt ever recorded.
func forgettable(h HostRecord) bool {
	return h.State == StateDiscovered && h.LastID == 0 && h.Current == nil
}

// before orders eviction candidates: a record seen only once (the MAC
// of a flood) goes before one seen again (a machine that keeps booting),
// and among those the least recently seen goes first.
func (s seen) before(o seen) bool {
	once, oOnce := s.last.Sub(s.since) < LastBootResolution, o.last.Sub(o.since) < LastBootResolution
	if once != oOnce {
		return once
	}
	return s.last.Before(o.last)
}

func (r *Registry) maxDiscovered() int {
	if r.MaxDiscovered > 0 {
		return r.MaxDiscovered
	}
	return DefaultMaxDiscovered
}

func (r *Registry) discoveredTTL() time.Duration {
	if r.DiscoveredTTL > 0 {
		return r.DiscoveredTTL
	}
	return DefaultDiscoveredTTL
}

// loadLocked reads the discovered records from the store; d.mu is held.
func (r *Registry) loadLocked(ctx context.Context) error {
	recs, err := r.Store.Hosts(ctx)
	if err != nil {
		return err
	}
	d := &r.disc
	d.m = make(map[string]seen)
	for _, h := range recs {
		if h.State == StateDiscovered {
			d.m[h.MAC] = seen{since: h.Since, last: h.LastBoot}
		}
	}
	d.loaded = true
	return nil
}

// admit makes room for a new discovered record of mac, first seen now: it
// reserves mac's place in the index and, at the cap, returns the record
// to evict for it ("" when there is room).
func (r *Registry) admit(ctx context.Context, mac string, now time.Time) (victim string, err error) {
	d := &r.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		if err := r.loadLocked(ctx); err != nil {
			return "", err
		}
	}
	if _, ok := d.m[mac]; ok {
		return "", nil
	}
	if len(d.m) >= r.maxDiscovered() {
		victim = d.oldestLocked()
		delete(d.m, victim)
	}
	d.m[mac] = seen{since: now, last: now}
	return victim, nil
}

// oldestLocked is the first record to evict; d.mu is held.
func (d *discoveredIndex) oldestLocked() string {
	var mac string
	var best seen
	for k, s := range d.m {
		if mac == "" || s.before(best) {
			mac, best = k, s
		}
	}
	return mac
}

// track keeps the index current with a record a change left;
// wasDiscovered is whether the record was discovered before the change.
func (r *Registry) track(h HostRecord, wasDiscovered bool) {
	if h.State != StateDiscovered && !wasDiscovered {
		return
	}
	d := &r.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		return // the load will see it
	}
	if h.State == StateDiscovered {
		d.m[h.MAC] = seen{since: h.Since, last: h.LastBoot}
	} else {
		delete(d.m, h.MAC)
	}
}

// evict removes victim, evicted at the cap for a new unknown MAC.
func (r *Registry) evict(ctx context.Context, victim string, now time.Time) error {
	ok, err := r.Store.Delete(ctx, victim, forgettable)
	if err != nil || !ok {
		return err
	}
	r.forgotten(ForgetCap, 1)
	d := &r.disc
	d.mu.Lock()
	d.burst++
	var n int
	if now.Sub(d.logged) >= burstLogEvery {
		n, d.burst, d.logged = d.burst, 0, now
	}
	d.mu.Unlock()
	if n > 0 {
		r.log().Warn("discovered records at the cap: the least recently seen make room for new unknown machines",
			"evicted", n, "cap", r.maxDiscovered(), "mac", victim)
	}
	return nil
}

// Sweep forgets the discovered records not seen for DiscoveredTTL, and the
// least recently seen beyond MaxDiscovered (after the cap was lowered),
// and reloads the registry's index of discovered records from the store.
// It returns how many it removed. The daemon runs it at start and every
// SweepInterval.
func (r *Registry) Sweep(ctx context.Context) (int, error) {
	now, ttl, max := r.now(), r.discoveredTTL(), r.maxDiscovered()
	d := &r.disc
	d.mu.Lock()
	err := r.loadLocked(ctx)
	var expired, over []string
	if err == nil {
		for mac, s := range d.m {
			if now.Sub(s.last) >= ttl {
				expired = append(expired, mac)
				delete(d.m, mac)
			}
		}
		for len(d.m) > max {
			mac := d.oldestLocked()
			over = append(over, mac)
			delete(d.m, mac)
		}
	}
	burst := d.burst
	d.burst, d.logged = 0, now
	d.mu.Unlock()
	if burst > 0 {
		r.log().Warn("discovered records at the cap: the least recently seen made room for new unknown machines", "evicted", burst, "cap", max)
	}
	if err != nil {
		return 0, err
	}
	stale := func(h HostRecord) bool { return forgettable(h) && now.Sub(h.LastBoot) >= ttl }
	ne, err := r.remove(ctx, expired, stale)
	r.forgotten(ForgetExpired, ne)
	if err != nil {
		return ne, err
	}
	no, err := r.remove(ctx, over, forgettable)
	r.forgotten(ForgetCap, no)
	if ne+no > 0 {
		r.log().Info("discovered records forgotten", "expired", ne, "over_cap", no, "ttl", ttl.String(), "cap", max)
	}
	return ne + no, err
}

// ForgetDiscovered removes every discovered record (without history)
// whose MAC keep does not hold for (the admin API keeps the hosts now in
// the profiles: their records turn pending at their next boot). It
// returns how many it removed; the caller logs the request (the admin API
// does, with the client's address).
func (r *Registry) ForgetDiscovered(ctx context.Context, keep func(mac string) bool) (int, error) {
	recs, err := r.Store.Hosts(ctx)
	if err != nil {
		return 0, err
	}
	var macs []string
	for _, h := range recs {
		if forgettable(h) && (keep == nil || !keep(h.MAC)) {
			macs = append(macs, h.MAC)
		}
	}
	n, err := r.remove(ctx, macs, forgettable)
	r.forgotten(ForgetAdmin, n)
	return n, err
}

// removeWorkers is how many deletions remove runs at once: a store that
// commits concurrent writes together (Bolt's Batch) then needs one commit
// for many records instead of one each.
const removeWorkers = 32

// remove deletes the records of macs for which ok holds, dropping them
// from the index, and counts those deleted.
func (r *Registry) remove(ctx context.Context, macs []string, ok func(HostRecord) bool) (int, error) {
	var (
		mu    sync.Mutex
		n     int
		first error
		wg    sync.WaitGroup
	)
	work := make(chan string)
	for range min(removeWorkers, len(macs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for mac := range work {
				deleted, err := r.Store.Delete(ctx, mac, ok)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if deleted {
					n++
				}
				mu.Unlock()
				if deleted {
					r.disc.mu.Lock()
					if r.disc.loaded {
						delete(r.disc.m, mac)
					}
					r.disc.mu.Unlock()
				}
			}
		}()
	}
	for _, mac := range macs {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		work <- mac
	}
	close(work)
	wg.Wait()
	return n, first
}

func (r *Registry) forgotten(reason string, n int) {
	if n > 0 && r.OnForget != nil {
		r.OnForget(reason, n)
	}
}
