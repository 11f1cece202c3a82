package etcdstore

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
)

// compactingKV fails the reads numbered in fail (1: the first) with
// ErrCompacted, as when the revision of Log's second read is compacted
// after its first.
type compactingKV struct {
	clientv3.KV
	mu   sync.Mutex
	gets int
	fail map[int]bool
}

func (k *compactingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	k.mu.Lock()
	k.gets++
	fail := k.fail[k.gets]
	k.mu.Unlock()
	if fail {
		return nil, rpctypes.ErrCompacted
	}
	return k.KV.Get(ctx, key, opts...)
}

// TestLogCompacted: Log reads again when its revision is compacted between
// its two reads, and gives up after three tries.
func TestLogCompacted(t *testing.T) {
	eps := etcdtest.Start(t)
	tests := []struct {
		name     string
		fail     map[int]bool
		wantErr  bool
		wantGets int
	}{
		{"Once", map[int]bool{2: true}, false, 4},
		{"Always", map[int]bool{2: true, 4: true, 6: true}, true, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, eps, etcdtest.Prefix(), "a")
			defer s.Close()
			if _, err := s.AppendLog(ctx, macA, 1, []string{"one"}); err != nil {
				t.Fatal(err)
			}
			kv := &compactingKV{KV: s.kv, fail: tt.fail}
			s.kv = kv
			got, err := s.Log(ctx, macA, 1, 0)
			if (err != nil) != tt.wantErr || kv.gets != tt.wantGets {
				t.Fatalf("Log = %v after %d reads; want error %v after %d", err, kv.gets, tt.wantErr, tt.wantGets)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(registry.LogTail{Lines: []string{"one"}, Last: 1}, got); diff != "" {
				t.Errorf("Log (-want +got):\n%s", diff)
			}
		})
	}
}
