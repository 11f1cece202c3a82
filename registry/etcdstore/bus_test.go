package etcdstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
)

// staleKV answers the first Get with a revision long compacted, as a
// subscriber that fell behind would hold.
type staleKV struct {
	clientv3.KV
	once sync.Once
}

func (k *staleKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r, err := k.KV.Get(ctx, key, opts...)
	if err == nil {
		k.once.Do(func() { r.Header.Revision = 1 })
	}
	return r, err
}

// syncBuffer is a log output written by the store's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSubscribeCompacted: a subscription whose revision was compacted says
// so in the log, goes on from the oldest revision kept, and delivers what
// is published afterwards.
func TestSubscribeCompacted(t *testing.T) {
	eps := etcdtest.Start(t)
	p := etcdtest.Prefix()
	var logs syncBuffer
	a := open(t, eps, p, "a")
	defer a.Close()
	b, err := Open(ctx, Config{Endpoints: eps, Prefix: p, ID: "b", LeaseTTL: testTTL,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Publish(ctx, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	// A write after it, so that compacting at its revision drops the
	// message's.
	r, err := a.client.Put(ctx, p+"compact-here", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.Compact(ctx, r.Header.Revision); err != nil {
		t.Fatal(err)
	}
	b.kv = &staleKV{KV: b.kv}
	sctx, cancel := context.WithCancel(ctx)
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(sctx, func(_ string, msg []byte) { got <- string(msg) }) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.After(10 * time.Second)
	for i := 0; ; i++ {
		if err := a.Publish(ctx, []byte(fmt.Sprint("after ", i))); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if !strings.HasPrefix(m, "after ") {
				t.Fatalf("delivered %q, published before the compaction", m)
			}
			if !strings.Contains(logs.String(), "compacted") {
				t.Errorf("no log of the compaction; log:\n%s", logs.String())
			}
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("nothing delivered 10 s after the compaction; log:\n%s", logs.String())
		}
	}
}
