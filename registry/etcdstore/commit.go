package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
)

// guarded is one change of a Store method: ops, applied only if the key
// guard was not written since it was read (its ModRevision is still rev).
type guarded struct {
	guard string
	// rev and version are guard's ModRevision and Version as read; 0 for
	// an absent key.
	rev, version int64
	// mine is the value ops put under guard, nil if they delete it.
	mine []byte
	ops  []clientv3.Op
}

// maxUnresolved bounds the transactions of one call that failed and were
// found not committed: beyond it the call returns the error instead of
// trying again.
const maxUnresolved = 3

// errUnknown marks a write whose outcome could not be established.
var errUnknown = errors.New("etcdstore: outcome of a write unknown")

// commit runs w's transaction and reports whether it was applied; false
// means another writer changed guard first, and the caller reads it again
// and retries. rev is the revision of an applied transaction, 0 when it is
// not known (a failed transaction found applied by resolve). failures
// counts the failed transactions of the caller's call.
func (s *Store) commit(ctx context.Context, w guarded, failures *int) (ok bool, rev int64, err error) {
	cctx, cancel := s.call(ctx)
	r, err := s.kv.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(w.guard), "=", w.rev)).Then(w.ops...).Commit()
	cancel()
	if err == nil {
		return r.Succeeded, r.Header.Revision, nil
	}
	if refused(err) {
		return false, 0, fmt.Errorf("etcdstore: write %s: %w", w.guard, err)
	}
	applied, known, rerr := s.resolve(ctx, w)
	switch {
	case rerr != nil:
		return false, 0, fmt.Errorf("%w: write %s: %w (reading it back: %v)", errUnknown, w.guard, err, rerr)
	case !known:
		return false, 0, fmt.Errorf("%w: write %s: %w (written again since)", errUnknown, w.guard, err)
	case applied:
		return true, 0, nil
	}
	*failures++
	if *failures >= maxUnresolved {
		return false, 0, fmt.Errorf("etcdstore: write %s: %w", w.guard, err)
	}
	return false, 0, nil
}

// refused reports whether etcd refused a request outright, so that it was
// certainly not applied: a request that is invalid or too large, too many
// operations, no space, no permission, no leader.
func refused(err error) bool {
	var e rpctypes.EtcdError
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.ResourceExhausted,
		codes.PermissionDenied, codes.Unauthenticated, codes.OutOfRange:
		return true
	}
	return e == rpctypes.ErrNoLeader
}

// resolve finds out whether w's transaction, which failed with an error
// that leaves it open (a timeout, a leader lost after the proposal), was
// applied, by reading guard again. Only one transaction can succeed
// against ModRevision == w.rev, so the first change of guard after w.rev
// decides it:
//
//   - guard unchanged: not applied;
//   - the first change after w.rev (Version is one more than read) holds
//     mine: applied; anything else: another writer came first;
//   - w deletes guard: absent or re-created means a delete came first,
//     which is what w wanted (a concurrent Delete is the same outcome);
//   - guard changed more than once since: unknown, unless it still holds
//     exactly mine.
func (s *Store) resolve(ctx context.Context, w guarded) (applied, known bool, err error) {
	r, err := s.get(ctx, w.guard)
	if err != nil {
		return false, false, err
	}
	var kv *mvccpb.KeyValue
	if len(r.Kvs) > 0 {
		kv = r.Kvs[0]
	}
	applied, known = decide(w, kv)
	return applied, known, nil
}

// decide is resolve's decision on guard as read again (kv nil: absent).
func decide(w guarded, kv *mvccpb.KeyValue) (applied, known bool) {
	if kv != nil && kv.ModRevision == w.rev {
		return false, true
	}
	if w.mine == nil {
		if kv == nil || kv.CreateRevision > w.rev {
			return true, true
		}
		return false, true // changed, not deleted: a write came first
	}
	if kv == nil {
		// Absent now. Absent before too: nothing was created in between
		// (a create then a delete within one call's time is not told
		// apart). Present before: a delete came after w.rev, first or not.
		return false, w.rev == 0
	}
	if bytes.Equal(kv.Value, w.mine) {
		return true, true
	}
	// The first write after w.rev, of the same incarnation of the key.
	first := kv.Version == w.version+1 && (w.rev == 0 || kv.CreateRevision <= w.rev)
	return false, first
}
