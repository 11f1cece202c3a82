package etcdstore

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
)

// fault is what faultyKV does to one transaction instead of committing it.
type fault struct {
	before func() // runs before, e.g. another appliance's write
	commit bool   // whether the transaction is committed
	after  func() // runs after
	err    error  // returned instead of the result
}

// faultyKV is a clientv3.KV whose transactions fail as planned, one fault
// per transaction, then work again.
type faultyKV struct {
	clientv3.KV
	mu   sync.Mutex
	plan []fault
	txns int // transactions committed or failed
}

func (k *faultyKV) Txn(ctx context.Context) clientv3.Txn {
	return &faultyTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type faultyTxn struct {
	clientv3.Txn
	kv *faultyKV
}

func (t *faultyTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.Txn = t.Txn.If(cs...); return t }
func (t *faultyTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Then(ops...)
	return t
}
func (t *faultyTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *faultyTxn) Commit() (*clientv3.TxnResponse, error) {
	t.kv.mu.Lock()
	t.kv.txns++
	if len(t.kv.plan) == 0 {
		t.kv.mu.Unlock()
		return t.Txn.Commit()
	}
	f := t.kv.plan[0]
	t.kv.plan = t.kv.plan[1:]
	t.kv.mu.Unlock()
	if f.before != nil {
		f.before()
	}
	var r *clientv3.TxnResponse
	if f.commit {
		var err error
		if r, err = t.Txn.Commit(); err != nil {
			return nil, err
		}
	}
	if f.after != nil {
		f.after()
	}
	if f.err != nil {
		return nil, f.err
	}
	return r, nil
}

// TestAmbiguousUpdate: an Update whose transaction fails with an error that
// leaves its outcome open is applied exactly once, or reports the error;
// fn's effect is never doubled.
func TestAmbiguousUpdate(t *testing.T) {
	eps := etcdtest.Start(t)
	timeout := rpctypes.ErrTimeoutDueToLeaderFail // Unavailable: may have been applied
	tests := []struct {
		name string
		// plan gets other, an increment by another appliance.
		plan      func(other func()) []fault
		wantErr   error // nil: success
		wantCount int   // Attempt after the Update (1 before)
		wantTxns  int
	}{
		{"CommittedThenError", func(func()) []fault {
			return []fault{{commit: true, err: timeout}}
		}, nil, 2, 1},
		{"NotCommittedThenError", func(func()) []fault {
			return []fault{{err: timeout}}
		}, nil, 2, 2},
		{"OtherFirstThenError", func(other func()) []fault {
			return []fault{{before: other, err: timeout}}
		}, nil, 3, 2},
		{"OtherFirstThenCommitted", func(other func()) []fault {
			return []fault{{before: other, commit: true}} // compare fails: a conflict, not an error
		}, nil, 3, 2},
		{"CommittedThenOtherThenError", func(other func()) []fault {
			return []fault{{commit: true, after: other, err: timeout}}
		}, errUnknown, 3, 1},
		{"NeverCommitted", func(func()) []fault {
			return []fault{{err: timeout}, {err: timeout}, {err: timeout}, {err: timeout}}
		}, timeout, 1, maxUnresolved},
		{"Refused", func(func()) []fault {
			return []fault{{commit: true, err: rpctypes.ErrTooManyOps}} // not resolved: returned at once
		}, rpctypes.ErrTooManyOps, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := etcdtest.Prefix()
			s, b := open(t, eps, p, "a"), open(t, eps, p, "b")
			defer s.Close()
			defer b.Close()
			inc := func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
				h.Attempt++
				return nil, nil
			}
			if _, err := s.Update(ctx, macA, inc); err != nil {
				t.Fatal(err)
			}
			// Another appliance's increment, which also leaves its name:
			// its bytes are never those of s's write.
			other := func() {
				if _, err := b.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
					h.Attempt++
					h.Reason = "b was here"
					return nil, nil
				}); err != nil {
					t.Error(err)
				}
			}
			kv := &faultyKV{KV: s.kv, plan: tt.plan(other)}
			s.kv = kv
			_, err := s.Update(ctx, macA, inc)
			if tt.wantErr == nil && err != nil || !errors.Is(err, tt.wantErr) {
				t.Errorf("Update = %v, want %v", err, tt.wantErr)
			}
			h, err := b.Host(ctx, macA)
			if err != nil {
				t.Fatal(err)
			}
			if h.Attempt != tt.wantCount || kv.txns != tt.wantTxns {
				t.Errorf("Attempt = %d after %d transactions, want %d after %d", h.Attempt, kv.txns, tt.wantCount, tt.wantTxns)
			}
		})
	}
}

// TestAmbiguousLogAndDelete: AppendLog and Delete whose committed
// transaction reports an error succeed once.
func TestAmbiguousLogAndDelete(t *testing.T) {
	eps := etcdtest.Start(t)
	s := open(t, eps, etcdtest.Prefix(), "a")
	defer s.Close()
	timeout := rpctypes.ErrTimeout
	kv := &faultyKV{KV: s.kv, plan: []fault{{commit: true, err: timeout}}}
	s.kv = kv
	if seq, err := s.AppendLog(ctx, macA, 1, []string{"one"}); err != nil || seq != 1 {
		t.Errorf("AppendLog = %d, %v; want 1, nil", seq, err)
	}
	kv.plan = []fault{{commit: true, err: timeout}}
	if seq, err := s.AppendLog(ctx, macA, 1, []string{"two"}); err != nil || seq != 2 {
		t.Errorf("AppendLog = %d, %v; want 2, nil", seq, err)
	}
	if l, err := s.Log(ctx, macA, 1, 0); err != nil || len(l.Lines) != 2 || l.Last != 2 {
		t.Errorf("Log = %+v, %v; want two lines, Last 2", l, err)
	}
	if _, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
		h.State = registry.StatePending
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	kv.plan = []fault{{commit: true, err: timeout}}
	if ok, err := s.Delete(ctx, macA, func(registry.HostRecord) bool { return true }); !ok || err != nil {
		t.Errorf("Delete = %v, %v; want true, nil", ok, err)
	}
	if _, err := s.Host(ctx, macA); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Host after Delete: %v, want ErrNotFound", err)
	}
}

const macA = "52:54:00:00:01:01"

// TestDecide: the resolution of a failed transaction from the guard key
// read back, for writes and deletes.
func TestDecide(t *testing.T) {
	mine, theirs := []byte("mine"), []byte("theirs")
	// kv is guard as read back: created at rev c, modified at m, version v.
	kv := func(c, m, v int64, val []byte) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{CreateRevision: c, ModRevision: m, Version: v, Value: val}
	}
	tests := []struct {
		name           string
		w              guarded // rev, version as read; mine
		kv             *mvccpb.KeyValue
		applied, known bool
	}{
		{"WriteUnchanged", guarded{rev: 10, version: 3, mine: mine}, kv(5, 10, 3, theirs), false, true},
		{"WriteFirstIsMine", guarded{rev: 10, version: 3, mine: mine}, kv(5, 11, 4, mine), true, true},
		{"WriteFirstIsTheirs", guarded{rev: 10, version: 3, mine: mine}, kv(5, 11, 4, theirs), false, true},
		{"WriteMineThenEqual", guarded{rev: 10, version: 3, mine: mine}, kv(5, 14, 6, mine), true, true},
		{"WriteChangedTwice", guarded{rev: 10, version: 3, mine: mine}, kv(5, 14, 5, theirs), false, false},
		{"WriteRecreated", guarded{rev: 10, version: 3, mine: mine}, kv(12, 13, 4, theirs), false, false},
		{"WriteDeletedSince", guarded{rev: 10, version: 3, mine: mine}, nil, false, false},
		{"CreateNothing", guarded{mine: mine}, nil, false, true},
		{"CreateMine", guarded{mine: mine}, kv(11, 11, 1, mine), true, true},
		{"CreateTheirs", guarded{mine: mine}, kv(11, 11, 1, theirs), false, true},
		{"CreateTheirsChanged", guarded{mine: mine}, kv(11, 12, 2, theirs), false, false},
		{"DeleteUnchanged", guarded{rev: 10, version: 3}, kv(5, 10, 3, theirs), false, true},
		{"DeleteDone", guarded{rev: 10, version: 3}, nil, true, true},
		{"DeleteThenRecreated", guarded{rev: 10, version: 3}, kv(12, 12, 1, theirs), true, true},
		{"DeleteLostToWrite", guarded{rev: 10, version: 3}, kv(5, 11, 4, theirs), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			applied, known := decide(tt.w, tt.kv)
			if applied != tt.applied || known != tt.known {
				t.Errorf("decide = applied %v, known %v; want %v, %v", applied, known, tt.applied, tt.known)
			}
		})
	}
}

// TestRefused: errors that prove a request was not applied, and errors
// that leave it open.
func TestRefused(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrTooManyOps, true},
		{rpctypes.ErrRequestTooLarge, true},
		{rpctypes.ErrNoSpace, true},
		{rpctypes.ErrPermissionDenied, true},
		{rpctypes.ErrNoLeader, true},
		{rpctypes.ErrTimeout, false},
		{rpctypes.ErrTimeoutDueToLeaderFail, false},
		{context.DeadlineExceeded, false},
		{errors.New("connection reset"), false},
	}
	for _, tt := range tests {
		if got := refused(tt.err); got != tt.want {
			t.Errorf("refused(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
