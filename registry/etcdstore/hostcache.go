package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rackboot/rackboot/registry"
)

// hostCache is the decoded copy of the hosts/ prefix that Host answers
// from: loaded by one read of the prefix, then kept current by a watch
// from the revision after it and by this Store's own writes. It is safe
// for concurrent use.
//
// Every change carries the revision etcd gave it, and a change is kept only
// if it is newer than what the cache holds for that MAC, so watch events
// and own writes may arrive in either order. A deletion that the watch has
// not delivered yet leaves a tombstone (its revision) that an older put
// cannot get past. Once the watch has delivered a revision (progress), a
// change at or below it is dropped: the watch already brought that state
// or a newer one. So tombstones at or below progress are no longer needed
// and are dropped.
type hostCache struct {
	// ready mirrors current for Host's lock-free check of whether to try
	// the cache at all.
	ready atomic.Bool

	mu sync.RWMutex
	// current: the watch is established and unbroken since the snapshot
	// the cache was loaded from.
	current  bool
	progress int64 // the revision the watch (or the snapshot) has delivered
	hosts    map[string]cachedHost
	gone     map[string]int64 // tombstones: MAC → revision of its deletion
}

// cachedHost is a record as of revision rev, decoded once; err is the
// decoding error of a record that does not decode, returned by Host as a
// direct read would return it.
type cachedHost struct {
	rev int64
	h   registry.HostRecord
	err error
}

// lookup returns a copy of the record of mac. ok false means the cache is
// not current and the caller must read etcd; found false (with ok) means
// etcd holds no record of mac as of the cache's revision.
func (c *hostCache) lookup(mac string) (h registry.HostRecord, found, ok bool, err error) {
	if !c.ready.Load() {
		return registry.HostRecord{}, false, false, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.current {
		return registry.HostRecord{}, false, false, nil
	}
	e, found := c.hosts[mac]
	if !found {
		return registry.HostRecord{}, false, true, nil
	}
	if e.err != nil {
		return registry.HostRecord{}, true, true, e.err
	}
	return e.h.Clone(), true, true, nil
}

// put records that mac holds h as of revision rev, written by this Store.
// The cache keeps h: the caller hands out copies of it only.
func (c *hostCache) put(mac string, rev int64, h registry.HostRecord) {
	c.mu.Lock()
	c.apply(mac, cachedHost{rev: rev, h: h}, false)
	c.mu.Unlock()
}

// remove records that mac was deleted at revision rev, by this Store.
func (c *hostCache) remove(mac string, rev int64) {
	c.mu.Lock()
	c.apply(mac, cachedHost{rev: rev}, true)
	c.mu.Unlock()
}

// apply keeps e (or, with deleted, a tombstone at e.rev) if it is newer
// than both the watch's progress and what the cache holds for mac. c.mu is
// held.
func (c *hostCache) apply(mac string, e cachedHost, deleted bool) {
	if e.rev <= c.progress {
		return
	}
	if old, ok := c.hosts[mac]; ok && old.rev >= e.rev {
		return
	}
	if rev, ok := c.gone[mac]; ok && rev >= e.rev {
		return
	}
	if c.hosts == nil {
		c.hosts = make(map[string]cachedHost)
	}
	if deleted {
		delete(c.hosts, mac)
		if c.gone == nil {
			c.gone = make(map[string]int64)
		}
		c.gone[mac] = e.rev
		return
	}
	delete(c.gone, mac)
	c.hosts[mac] = e
}

// advance records that the watch has delivered every change up to rev,
// and drops the tombstones it made useless.
func (c *hostCache) advance(rev int64) {
	if rev <= c.progress {
		return
	}
	c.progress = rev
	for mac, r := range c.gone {
		if r <= rev {
			delete(c.gone, mac)
		}
	}
}

// load replaces the cache's content with a snapshot of the prefix read at
// revision rev, keeping the own writes newer than it. The cache stays not
// current until the watch from rev+1 is established (setCurrent).
func (c *hostCache) load(hosts map[string]cachedHost, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for mac, e := range c.hosts {
		if e.rev > rev {
			hosts[mac] = e
		}
	}
	for mac, r := range c.gone {
		if r > rev {
			delete(hosts, mac)
		} else {
			delete(c.gone, mac)
		}
	}
	c.hosts = hosts
	c.progress = rev
}

// setCurrent marks the cache current (the watch is established) or not
// (it broke: Host reads etcd until the cache is loaded and watching again).
func (c *hostCache) setCurrent(current bool) {
	c.mu.Lock()
	c.current = current
	c.ready.Store(current)
	c.mu.Unlock()
}

// startHostSync starts keeping the host cache, once, unless the Store is
// closed. It runs on the first Host, so a Store that never serves Host
// holds no watch.
func (s *Store) startHostSync() {
	if s.hostSync.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.hostSync.Load() {
		return
	}
	s.hostSync.Store(true)
	s.wg.Add(1)
	go s.syncHosts()
}

// syncHosts keeps the host cache until the Store is closed: it loads the
// prefix and follows it with a watch; when the watch breaks, the cache is
// marked not current and loaded again after a back-off.
func (s *Store) syncHosts() {
	defer s.wg.Done()
	wait := retryMin
	for {
		err := s.followHosts(&wait)
		s.hosts.setCurrent(false)
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("host cache not current, reading etcd until it is", "err", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

// errWatchClosed is followHosts' error for a watch channel that closed
// without saying why (the client closing, or its context ended).
var errWatchClosed = errors.New("etcdstore: host watch closed")

// followHosts loads the host cache from one read of the prefix and applies
// the changes after it, delivered by a watch, until the watch breaks; it
// returns why. The cache is current from the watch's creation until then;
// *wait is reset to retryMin once it is.
func (s *Store) followHosts(wait *time.Duration) error {
	p := s.hostsPrefix()
	r, err := s.get(s.ctx, p, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	hosts := make(map[string]cachedHost, len(r.Kvs))
	for _, kv := range r.Kvs {
		e := cachedHost{rev: kv.ModRevision}
		if e.h, e.err = registry.DecodeHost(kv.Value); e.err != nil {
			e.err = fmt.Errorf("%s: %w", kv.Key, e.err)
		}
		hosts[strings.TrimPrefix(string(kv.Key), p)] = e
	}
	rev := r.Header.Revision
	s.hosts.load(hosts, rev)

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.ctx))
	defer cancel()
	for resp := range s.watcher.Watch(wctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev+1),
		clientv3.WithCreatedNotify(), clientv3.WithProgressNotify()) {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("etcdstore: host watch from revision %d: compacted up to %d", rev+1, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcdstore: host watch: %w", err)
		}
		if resp.Canceled {
			return fmt.Errorf("etcdstore: host watch canceled: %s", resp.CancelReason)
		}
		if resp.Created {
			s.hosts.setCurrent(true)
			*wait = retryMin
			continue
		}
		s.applyEvents(resp, p)
	}
	return errWatchClosed
}

// applyEvents applies one watch response to the host cache.
func (s *Store) applyEvents(resp clientv3.WatchResponse, p string) {
	last := int64(0)
	decoded := make([]cachedHost, len(resp.Events))
	for i, ev := range resp.Events { // decode outside the lock
		if ev.Type == clientv3.EventTypePut {
			d := &decoded[i]
			if d.h, d.err = registry.DecodeHost(ev.Kv.Value); d.err != nil {
				d.err = fmt.Errorf("%s: %w", ev.Kv.Key, d.err)
			}
		}
	}
	c := &s.hosts
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ev := range resp.Events {
		mac := strings.TrimPrefix(string(ev.Kv.Key), p)
		e := decoded[i]
		e.rev = ev.Kv.ModRevision
		c.apply(mac, e, ev.Type == clientv3.EventTypeDelete)
		last = max(last, e.rev)
	}
	if resp.IsProgressNotify() {
		last = resp.Header.Revision
	}
	c.advance(last)
}
