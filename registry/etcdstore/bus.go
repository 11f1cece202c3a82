package etcdstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Publish implements registry.Shared: a put of bus/ID/SEQ on a short lease
// (granted once per half LeaseTTL), so messages expire by themselves;
// subscribers receive the put from their watch.
func (s *Store) Publish(ctx context.Context, msg []byte) error {
	if s.ctx.Err() != nil {
		return errClosed
	}
	lease, seq, err := s.busLease(ctx)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s%s/%016x", s.busPrefix(), s.cfg.ID, seq)
	cctx, cancel := s.call(ctx)
	defer cancel()
	if _, err := s.kv.Put(cctx, key, string(msg), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("etcdstore: publish: %w", err)
	}
	return nil
}

// busLease returns the lease for a message, granting a new one when the
// current one is older than half its TTL (so a message lives between half
// and all of LeaseTTL), and the message's sequence number.
func (s *Store) busLease(ctx context.Context) (clientv3.LeaseID, uint64, error) {
	s.busMu.Lock()
	defer s.busMu.Unlock()
	if s.busID == 0 || time.Since(s.busAt) > time.Duration(s.ttl)*time.Second/2 {
		lease, err := s.grant(ctx, s.ttl)
		if err != nil {
			return 0, 0, fmt.Errorf("etcdstore: publish: %w", err)
		}
		s.busID, s.busAt = lease, time.Now()
	}
	s.busSeq++
	return s.busID, s.busSeq, nil
}

// Subscribe implements registry.Shared: a watch of bus/ from the revision
// current when it starts, skipping this appliance's own messages. A watch
// that ends (no leader, the store unreachable, its revision compacted) is
// opened again after a back-off from the last revision delivered; messages
// compacted away meanwhile are lost. It returns nil when ctx ends, and an
// error when the Store is closed.
func (s *Store) Subscribe(ctx context.Context, fn func(from string, msg []byte)) error {
	p := s.busPrefix()
	own := p + s.cfg.ID + "/"
	var rev int64 // the last revision delivered (or skipped)
	wait := retryMin
	for {
		if rev == 0 {
			if r, err := s.get(ctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
				s.log.Warn("subscription not started", "err", err)
			} else {
				rev = r.Header.Revision
			}
		}
		if rev != 0 {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for resp := range s.client.Watch(wctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterDelete()) {
				if resp.CompactRevision != 0 {
					s.log.Warn("messages compacted before delivery", "from_rev", rev+1, "to_rev", resp.CompactRevision)
					rev = resp.CompactRevision - 1
					break
				}
				if err := resp.Err(); err != nil {
					s.log.Warn("subscription interrupted", "err", err)
					break
				}
				for _, ev := range resp.Events {
					rev = ev.Kv.ModRevision
					key := string(ev.Kv.Key)
					if strings.HasPrefix(key, own) {
						continue
					}
					from, _, ok := strings.Cut(strings.TrimPrefix(key, p), "/")
					if !ok {
						continue // not a message key
					}
					fn(from, ev.Kv.Value)
				}
				wait = retryMin
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return errClosed
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}
