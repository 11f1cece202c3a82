package etcdstore

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rackboot/rackboot/registry"
)

// Host implements registry.Store. It answers from the host cache while the
// cache is current (see the package doc, "Reads of Host"), without a call
// to etcd, and reads etcd otherwise.
func (s *Store) Host(ctx context.Context, mac string) (registry.HostRecord, error) {
	if s.ctx.Err() != nil {
		return registry.HostRecord{}, errClosed
	}
	s.startHostSync()
	h, found, ok, err := s.hosts.lookup(mac)
	switch {
	case !ok:
		return s.readHost(ctx, mac)
	case err != nil:
		return registry.HostRecord{}, err
	case !found:
		return registry.HostRecord{}, fmt.Errorf("%w: %s", registry.ErrNotFound, mac)
	}
	return h, nil
}

// readHost reads the record of mac from etcd: a linearizable read.
func (s *Store) readHost(ctx context.Context, mac string) (registry.HostRecord, error) {
	r, err := s.get(ctx, s.hostKey(mac))
	if err != nil {
		return registry.HostRecord{}, err
	}
	if len(r.Kvs) == 0 {
		return registry.HostRecord{}, fmt.Errorf("%w: %s", registry.ErrNotFound, mac)
	}
	return registry.DecodeHost(r.Kvs[0].Value)
}

// Hosts implements registry.Store: one read of every record, never from
// the host cache. It is the administrator's view, and a linearizable read
// shows every write acknowledged before it, whoever made it.
func (s *Store) Hosts(ctx context.Context) ([]registry.HostRecord, error) {
	r, err := s.get(ctx, s.hostsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]registry.HostRecord, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		h, err := registry.DecodeHost(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// Update implements registry.Store: read the record, call fn, write the
// result in a transaction that holds only if the record was not written
// meanwhile; otherwise read again and call fn again.
func (s *Store) Update(ctx context.Context, mac string, fn func(*registry.HostRecord, bool) (*registry.Attempt, error)) (registry.HostRecord, error) {
	key := s.hostKey(mac)
	failures := 0
	for {
		r, err := s.get(ctx, key)
		if err != nil {
			return registry.HostRecord{}, err
		}
		var h registry.HostRecord
		var before []byte
		w := guarded{guard: key}
		exists := len(r.Kvs) > 0
		if exists {
			kv := r.Kvs[0]
			w.rev, w.version, before = kv.ModRevision, kv.Version, kv.Value
			if h, err = registry.DecodeHost(before); err != nil {
				return registry.HostRecord{}, err
			}
		} else {
			h = registry.HostRecord{MAC: mac}
			if before, _, err = registry.EncodeUpdate(mac, h, nil); err != nil {
				return registry.HostRecord{}, err
			}
		}
		a, err := fn(&h, exists)
		if err != nil {
			return registry.HostRecord{}, err
		}
		after, ab, err := registry.EncodeUpdate(mac, h, a)
		if err != nil {
			return registry.HostRecord{}, err
		}
		if ab != nil {
			w.ops = append(w.ops, clientv3.OpPut(s.attemptKey(mac, a.ID), string(ab)))
		}
		if !bytes.Equal(after, before) {
			w.mine = after
			w.ops = append(w.ops, clientv3.OpPut(key, string(after)))
		} else {
			// The record stays as it is: a failed transaction that put
			// only the attempt is safe to run again, so it is resolved
			// as not applied (guard unchanged) or retried.
			w.mine = before
		}
		if len(w.ops) == 0 {
			return registry.DecodeHost(after)
		}
		ok, rev, err := s.commit(ctx, w, &failures)
		if err != nil {
			return registry.HostRecord{}, fmt.Errorf("etcdstore: update %s: %w", mac, err)
		}
		if !ok {
			continue
		}
		out, err := registry.DecodeHost(after)
		if err == nil && rev != 0 && !bytes.Equal(after, before) {
			// Only a write of the record itself reaches the cache: an
			// attempt-only transaction's revision is not the record's.
			s.hosts.put(mac, rev, out.Clone())
		}
		return out, err
	}
}

// History implements registry.Store.
func (s *Store) History(ctx context.Context, mac string) ([]registry.Attempt, error) {
	r, err := s.get(ctx, s.attemptsPrefix(mac), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]registry.Attempt, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		a, err := registry.DecodeAttempt(mac, kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Delete implements registry.Store: the record, its attempts and its logs
// go in one transaction, guarded like Update's.
func (s *Store) Delete(ctx context.Context, mac string, fn func(registry.HostRecord) bool) (bool, error) {
	key := s.hostKey(mac)
	failures := 0
	for {
		r, err := s.get(ctx, key)
		if err != nil {
			return false, err
		}
		if len(r.Kvs) == 0 {
			return false, nil
		}
		kv := r.Kvs[0]
		h, err := registry.DecodeHost(kv.Value)
		if err != nil {
			return false, err
		}
		if !fn(h) {
			return false, nil
		}
		w := guarded{guard: key, rev: kv.ModRevision, version: kv.Version, ops: []clientv3.Op{
			clientv3.OpDelete(key),
			clientv3.OpDelete(s.attemptsPrefix(mac), clientv3.WithPrefix()),
			clientv3.OpDelete(s.logIndexPrefix(mac), clientv3.WithPrefix()),
			clientv3.OpDelete(s.logsPrefix(mac), clientv3.WithPrefix()),
		}}
		ok, rev, err := s.commit(ctx, w, &failures)
		if err != nil {
			return false, fmt.Errorf("etcdstore: delete %s: %w", mac, err)
		}
		if ok {
			if rev != 0 {
				s.hosts.remove(mac, rev)
			}
			return true, nil
		}
	}
}

// PutBlob implements registry.Store.
func (s *Store) PutBlob(ctx context.Context, key string, value []byte) error {
	if s.ctx.Err() != nil {
		return errClosed
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	var err error
	if value == nil {
		_, err = s.kv.Delete(cctx, s.blobKey(key))
	} else {
		_, err = s.kv.Put(cctx, s.blobKey(key), string(value))
	}
	if err != nil {
		return fmt.Errorf("etcdstore: put blob %s: %w", key, err)
	}
	return nil
}

// Blobs implements registry.Store.
func (s *Store) Blobs(ctx context.Context, prefix string) (map[string][]byte, error) {
	r, err := s.get(ctx, s.blobKey(prefix), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(r.Kvs))
	for _, kv := range r.Kvs {
		out[strings.TrimPrefix(string(kv.Key), s.blobKey(""))] = kv.Value
	}
	return out, nil
}
