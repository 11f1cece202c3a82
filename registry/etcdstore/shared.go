package etcdstore

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Secret implements registry.Shared: a read, and when the secret is absent
// a transaction that creates it only if it is still absent (else reads
// what another appliance created). A failed transaction is resolved by
// reading again: whoever's bytes are there are the secret.
func (s *Store) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	key := s.secretKey(name)
	r, err := s.get(ctx, key)
	if err != nil {
		return nil, err
	}
	if len(r.Kvs) > 0 {
		return r.Kvs[0].Value, nil
	}
	v, err := gen()
	if err != nil {
		return nil, fmt.Errorf("etcdstore: make secret %s: %w", name, err)
	}
	cctx, cancel := s.call(ctx)
	tr, err := s.kv.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(v))).Else(clientv3.OpGet(key)).Commit()
	cancel()
	switch {
	case err != nil && refused(err):
		return nil, fmt.Errorf("etcdstore: store secret %s: %w", name, err)
	case err != nil:
		r, rerr := s.get(ctx, key)
		if rerr != nil {
			return nil, fmt.Errorf("etcdstore: store secret %s: %w", name, err)
		}
		if len(r.Kvs) == 0 {
			return nil, fmt.Errorf("etcdstore: store secret %s (not stored): %w", name, err)
		}
		return r.Kvs[0].Value, nil
	case tr.Succeeded:
		return v, nil
	}
	kvs := tr.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		// Created and deleted again in between: secrets are never deleted.
		return nil, fmt.Errorf("etcdstore: secret %s vanished while being stored", name)
	}
	return kvs[0].Value, nil
}

// Announce implements registry.Shared: appliances/ID, on this Store's
// lease.
func (s *Store) Announce(ctx context.Context, info []byte) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.info = append([]byte(nil), info...)
	lease := s.lease
	s.mu.Unlock()
	return s.putPresence(ctx, lease, info)
}

// putPresence puts this appliance's entry on lease.
func (s *Store) putPresence(ctx context.Context, lease clientv3.LeaseID, info []byte) error {
	cctx, cancel := s.call(ctx)
	defer cancel()
	if _, err := s.kv.Put(cctx, s.appliancesPrefix()+s.cfg.ID, string(info), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("etcdstore: announce %s: %w", s.cfg.ID, err)
	}
	return nil
}

// Appliances implements registry.Shared.
func (s *Store) Appliances(ctx context.Context) (map[string][]byte, error) {
	p := s.appliancesPrefix()
	r, err := s.get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(r.Kvs))
	for _, kv := range r.Kvs {
		out[strings.TrimPrefix(string(kv.Key), p)] = kv.Value
	}
	return out, nil
}
