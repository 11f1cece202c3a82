package etcdstore

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// grant makes a lease of ttl seconds.
func (s *Store) grant(ctx context.Context, ttl int64) (clientv3.LeaseID, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	r, err := s.client.Grant(cctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("etcdstore: grant a lease: %w", err)
	}
	return r.ID, nil
}

// Back-off between attempts to renew a lost lease or re-open a watch:
// doubling from retryMin to retryMax.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// keepLease keeps the presence lease alive for the Store's life. When the
// lease is lost (etcd unreachable for longer than its TTL, so it expired),
// it grants a new one and announces this appliance again on it.
func (s *Store) keepLease(lease clientv3.LeaseID) {
	defer s.wg.Done()
	wait := retryMin
	for {
		ch, err := s.client.KeepAlive(s.ctx, lease)
		if err == nil {
			for range ch { // the client renews; nothing to do per renewal
				wait = retryMin
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("etcd lease lost, granting a new one", "lease", int64(lease), "err", err)
		for {
			if !sleep(s.ctx, wait) {
				return
			}
			wait = min(2*wait, retryMax)
			if lease, err = s.renew(); err == nil {
				break
			}
			s.log.Warn("etcd lease not renewed", "err", err)
		}
	}
}

// renew grants a new presence lease and puts the last Announce on it.
func (s *Store) renew() (clientv3.LeaseID, error) {
	lease, err := s.grant(s.ctx, s.ttl)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.lease = lease
	info := s.info
	s.mu.Unlock()
	if info != nil {
		if err := s.putPresence(s.ctx, lease, info); err != nil {
			// The lease is good; the next Announce puts the info again.
			s.log.Warn("appliance not announced on the new lease", "err", err)
		}
	}
	return lease, nil
}
