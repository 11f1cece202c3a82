package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rackboot/rackboot/registry"
)

// logIndex is the value of logidx/MAC/ID: which batches of the log are
// kept, and their stored sizes, so an append knows what to drop without
// reading the batches.
type logIndex struct {
	// First and Last are the sequence numbers of the oldest and newest
	// kept batches (First > Last: none yet).
	First int `json:"first"`
	Last  int `json:"last"`
	// Sizes are the stored sizes of batches First…Last.
	Sizes []int `json:"sizes"`
}

// AppendLog implements registry.Store. The batch, the index and the drop
// of the oldest batches are one transaction guarded by the index; the
// dropped batches go with one range delete, however many they are (etcd
// allows 128 operations per transaction).
func (s *Store) AppendLog(ctx context.Context, mac string, id int, lines []string) (int, error) {
	data, err := registry.EncodeBatch(lines)
	if err != nil {
		return 0, err
	}
	key := s.logIndexKey(mac, id)
	failures := 0
	for {
		r, err := s.get(ctx, key)
		if err != nil {
			return 0, err
		}
		idx := logIndex{First: 1}
		w := guarded{guard: key}
		if len(r.Kvs) > 0 {
			kv := r.Kvs[0]
			w.rev, w.version = kv.ModRevision, kv.Version
			if err := json.Unmarshal(kv.Value, &idx); err != nil {
				return 0, fmt.Errorf("etcdstore: decode log index %s: %w", key, err)
			}
		}
		seq := idx.Last + 1
		sizes := append(idx.Sizes[:len(idx.Sizes):len(idx.Sizes)], len(data))
		drop := registry.LogOverflow(sizes)
		next := logIndex{First: idx.First + drop, Last: seq, Sizes: sizes[drop:]}
		if w.mine, err = json.Marshal(next); err != nil {
			return 0, fmt.Errorf("etcdstore: encode log index: %w", err)
		}
		w.ops = []clientv3.Op{clientv3.OpPut(s.logKey(mac, id, seq), string(data))}
		if drop > 0 {
			w.ops = append(w.ops, clientv3.OpDelete(s.logKey(mac, id, idx.First),
				clientv3.WithRange(s.logKey(mac, id, idx.First+drop))))
		}
		w.ops = append(w.ops, clientv3.OpPut(key, string(w.mine)))
		ok, _, err := s.commit(ctx, w, &failures)
		if err != nil {
			return 0, fmt.Errorf("etcdstore: append log of %s attempt %d: %w", mac, id, err)
		}
		if ok {
			return seq, nil
		}
	}
}

// Log implements registry.Store. Both reads are at one revision, so an
// append or a drop between them is seen whole or not at all; when that
// revision is compacted between them, Log reads again.
func (s *Store) Log(ctx context.Context, mac string, id, after int) (registry.LogTail, error) {
	for tries := 1; ; tries++ {
		t, err := s.readLog(ctx, mac, id, after)
		if !errors.Is(err, rpctypes.ErrCompacted) || tries == 3 {
			return t, err
		}
	}
}

// readLog is one attempt of Log.
func (s *Store) readLog(ctx context.Context, mac string, id, after int) (registry.LogTail, error) {
	after = max(after, 0)
	t := registry.LogTail{Lines: []string{}, Last: after}
	prefix := s.logPrefix(mac, id)
	first, err := s.get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if err != nil {
		return registry.LogTail{}, err
	}
	if len(first.Kvs) == 0 {
		return t, nil
	}
	oldest, err := logSeq(prefix, first.Kvs[0].Key)
	if err != nil {
		return registry.LogTail{}, err
	}
	t.Truncated = oldest > 1
	if after >= 1<<32-1 {
		return t, nil
	}
	r, err := s.get(ctx, s.logKey(mac, id, after+1),
		clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithRev(first.Header.Revision))
	if err != nil {
		return registry.LogTail{}, err
	}
	for _, kv := range r.Kvs {
		lines, err := registry.DecodeBatch(kv.Value)
		if err != nil {
			return registry.LogTail{}, fmt.Errorf("%s: %w", kv.Key, err)
		}
		if t.Last, err = logSeq(prefix, kv.Key); err != nil {
			return registry.LogTail{}, err
		}
		t.Lines = append(t.Lines, lines...)
	}
	return t, nil
}

// logSeq returns the sequence number of the batch stored under key.
func logSeq(prefix string, key []byte) (int, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(string(key), prefix), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("etcdstore: log key %s: %w", key, err)
	}
	return int(n), nil
}
