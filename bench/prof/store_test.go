package prof

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore"
)

// etcdEnv names the etcd cluster the benchmarks' etcd variants use
// (client URLs, comma-separated: http://127.0.0.1:2379), such as Debian's
// etcd started as bench/run.sh starts it. Without it they are skipped.
const etcdEnv = "RACKBOOT_BENCH_ETCD"

// storeKind is a registry backend the benchmarks compare.
type storeKind struct {
	name string
	open func(b *testing.B) registry.Store
}

// stores returns bbolt, memory and, when etcdEnv is set, etcd, each a
// fresh empty store per benchmark (etcd: under a key prefix of its own).
func stores() []storeKind {
	ks := []storeKind{
		{"bolt", func(b *testing.B) registry.Store {
			s, err := registry.OpenBolt(filepath.Join(b.TempDir(), "registry.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"memory", func(*testing.B) registry.Store { return registry.NewMemory() }},
	}
	if eps := os.Getenv(etcdEnv); eps != "" {
		ks = append(ks, storeKind{"etcd", func(b *testing.B) registry.Store {
			s, err := etcdstore.Open(context.Background(), etcdstore.Config{
				Endpoints: strings.Split(eps, ","), ID: "bench",
				Prefix: fmt.Sprintf("/rbbench-%d/", time.Now().UnixNano()),
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}})
	}
	return ks
}

// BenchmarkStoreHost is one read of a host's record from 64 goroutines,
// over 1,000 recorded hosts: what P5's token check (every progress report)
// and P3's script request pay the store, on each backend.
func BenchmarkStoreHost(b *testing.B) {
	ctx := context.Background()
	for _, st := range stores() {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			macs := make([]string, 1000)
			for i := range macs {
				macs[i] = net.HardwareAddr{0x52, 0x54, 0x02, 0, byte(i >> 8), byte(i)}.String()
				if _, err := s.Update(ctx, macs[i], func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
					h.State, h.Hostname = registry.StatePending, fmt.Sprintf("agent-%05d", i)
					return nil, nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(64)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Host(ctx, macs[int(next.Add(1))%len(macs)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
