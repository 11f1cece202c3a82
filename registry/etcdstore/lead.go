package etcdstore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Lead implements registry.Shared with an election (concurrency.Election
// on leader/) on a session lease of its own, LeaseTTL long. The returned
// context ends when ctx ends (cancelling ctx is how an appliance gives
// leadership up), when the Store is closed, or when the session is lost
// (its lease could not be renewed in time, so another appliance may lead
// already); the session is then closed, its lease revoked, and the next
// appliance in line leads at once.
func (s *Store) Lead(ctx context.Context) (context.Context, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	lease, err := s.grant(ctx, s.ttl)
	if err != nil {
		s.wg.Done()
		return nil, fmt.Errorf("etcdstore: lead: %w", err)
	}
	sess, err := concurrency.NewSession(s.client, concurrency.WithLease(lease), concurrency.WithTTL(int(s.ttl)))
	if err != nil {
		s.wg.Done()
		return nil, fmt.Errorf("etcdstore: lead: start session: %w", err)
	}
	// Campaign until this appliance leads, ctx ends, the Store closes or
	// the session ends.
	cctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	unhook := context.AfterFunc(s.ctx, stop)
	defer unhook()
	go func() {
		select {
		case <-sess.Done():
			stop()
		case <-cctx.Done():
		}
	}()
	if err := concurrency.NewElection(sess, s.cfg.Prefix+"leader").Campaign(cctx, s.cfg.ID); err != nil {
		s.endSession(sess)
		return nil, fmt.Errorf("etcdstore: lead: campaign: %w", err)
	}
	select {
	case <-sess.Done():
		s.endSession(sess)
		return nil, fmt.Errorf("etcdstore: lead: session lost while campaigning")
	default:
	}
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-sess.Done():
			s.log.Warn("leadership lost: etcd session ended")
		case <-lctx.Done():
		case <-s.ctx.Done():
		}
		cancel()
		s.endSession(sess)
	}()
	return lctx, nil
}

// endSession closes a leadership session (revoking its lease, so its
// election key goes at once) and ends Lead's share of the Store's wait
// group.
func (s *Store) endSession(sess *concurrency.Session) {
	defer s.wg.Done()
	if err := sess.Close(); err != nil {
		s.log.Warn("leadership session not revoked, it expires with its lease", "err", err)
	}
}
