package prof

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/rackboot/rackboot/bench/internal/appliance"
	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// fleet is P3's and P5's: n pending hosts with one version and layout.
func fleet(b *testing.B, n int) (*profiles.Set, []string) {
	b.Helper()
	var y strings.Builder
	y.WriteString(`versions:
  - name: bench-1
    number: 1
    image: { url: bench-1.img.zst, sha256: ` + strings.Repeat("ab", 32) + `, format: zstd, kind: whole-disk }
    installer: { kernel: vmlinuz, initrd: initrd.img, cmdline: "console=ttyS0,115200" }
layouts:
  - name: small
    disk: { select: smallest, min_size: 1GiB }
    partitions:
      - { name: cidata, size: 16MiB, type: linux, content: config }
defaults: { version: bench-1, layout: small }
hosts:
`)
	macs := make([]string, n)
	for i := range macs {
		m := net.HardwareAddr{0x52, 0x54, 0x02, byte(i >> 16), byte(i >> 8), byte(i)}
		macs[i] = strings.ReplaceAll(m.String(), ":", "-")
		fmt.Fprintf(&y, "  - { mac: %q, hostname: agent-%05d }\n", m.String(), i)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(y.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	set, err := profiles.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	return set, macs
}

// BenchmarkScript serves /ipxe?mac= for 1,000 pending hosts from parallel
// goroutines, with the registry on bbolt (as rackboot serve runs it), in
// memory and, with RACKBOOT_BENCH_ETCD, on etcd. Each host's first request records it (a durable transaction on
// bbolt); the later ones read its record, derive the same install token and
// write nothing, as when a rack's ROMs fetch their scripts again.
func BenchmarkScript(b *testing.B) {
	set, macs := fleet(b, 1000)
	for _, st := range stores() {
		b.Run(st.name, func(b *testing.B) {
			reg := &registry.Registry{Store: st.open(b)}
			h := &ipxe.Handler{Hosts: set, Lifecycle: appliance.Lifecycle{Reg: reg}, Advertise: "192.168.77.1", Port: 8080}
			var next atomic.Int64
			b.SetParallelism(64) // many connections waiting on the server, as wrk -c1000
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mac := macs[int(next.Add(1))%len(macs)]
					req := httptest.NewRequest(http.MethodGet, "/ipxe?mac="+mac+"&arch=x86_64&platform=pcbios", nil)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte("rackboot.token=")) {
						b.Errorf("script of %s: %d\n%s", mac, w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}

// BenchmarkBoltCommit is the registry's write pattern alone (one ~1 KiB
// record per transaction, 64 writers) with bbolt's Update, which commits
// and fsyncs each transaction, and with Batch, which commits the
// transactions of concurrent callers together. registry.Store already
// allows Update's fn to run more than once, which is Batch's condition.
func BenchmarkBoltCommit(b *testing.B) {
	record := bytes.Repeat([]byte("x"), 1000)
	for _, mode := range []string{"update", "batch"} {
		b.Run(mode, func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "b.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("hosts")); return err }); err != nil {
				b.Fatal(err)
			}
			commit := db.Update
			if mode == "batch" {
				commit = db.Batch
			}
			var next atomic.Int64
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Appendf(nil, "52:54:02:00:%02x:%02x", byte(next.Add(1)>>8), byte(next.Load()))
					if err := commit(func(tx *bolt.Tx) error { return tx.Bucket([]byte("hosts")).Put(key, record) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
