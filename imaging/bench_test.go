package imaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rackboot/rackboot/agentapi"
)

// benchImage is the benchmark's image: a raw file and its zstd -3
// compression made by the zstd command, with their digests.
type benchImage struct {
	raw, zst       string
	size           int64
	rawSHA, zstSHA string
}

// makeBenchImage writes an image of size bytes that compresses about as
// well as an OS image: per MiB, a quarter random bytes, a quarter zeros and
// half repetitive text.
func makeBenchImage(b *testing.B, dir string, size int64) benchImage {
	b.Helper()
	zstdCmd := needTool(b, "zstd")
	img := benchImage{raw: filepath.Join(dir, "os.img"), zst: filepath.Join(dir, "os.img.zst"), size: size}
	f, err := os.Create(img.raw)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	text := []byte("Lorem ipsum dolor sit amet, rackboot installs operating systems. ")
	block := make([]byte, mib)
	h := sha256.New()
	for off := int64(0); off < size; off += mib {
		q := len(block) / 4
		for i := 0; i < q; i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				block[i+j] = byte(v >> (8 * j))
			}
		}
		clear(block[q : 2*q])
		for i := 2 * q; i < len(block); i++ {
			block[i] = text[(i+int(off>>20))%len(text)]
		}
		f.Write(block)
		h.Write(block)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	img.rawSHA = hex.EncodeToString(h.Sum(nil))
	out, err := exec.Command(zstdCmd, "-q", "-3", "-T0", "-f", img.raw, "-o", img.zst).CombinedOutput()
	if err != nil {
		b.Fatalf("zstd: %v\n%s", err, out)
	}
	img.zstSHA = fileSHA(b, img.zst)
	return img
}

func fileSHA(b *testing.B, p string) string {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// fileOpener opens a local file at an offset.
func fileOpener(p string) Opener {
	return func(_ context.Context, off int64) (io.ReadCloser, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
}

// BenchmarkStream writes a multi-GiB image (2 GiB by default; set
// RACKBOOT_BENCH_SIZE in MiB) to a file three ways in each iteration, all
// ending with the data on disk (fsync):
//
//	stream:   Stream into the file, page cache and early writeback
//	direct:   Stream as the Installer does it, with O_DIRECT
//	shell:    zstd -dc IMG.zst | dd of=OUT bs=8M conv=fsync
//	          (raw: dd if=IMG of=OUT bs=8M conv=fsync)
//
// and reports MB/s for each and ratio = shell time / Stream time (above 1:
// Stream is faster), for the zstd and the raw image. zstd-http streams over
// a loopback HTTP server, with no shell counterpart. It measures and
// asserts nothing. After an uncounted warm-up the three variants run in
// rotating order, each from a synced page cache, because this machine's
// write speed drifts a lot from run to run. Run with
//
//	go test -run '^$' -bench Stream -benchtime 3x ./imaging
func BenchmarkStream(b *testing.B) {
	size := int64(2048) * mib
	if s := os.Getenv("RACKBOOT_BENCH_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n * mib
	}
	dir := b.TempDir()
	img := makeBenchImage(b, dir, size)
	zfi, _ := os.Stat(img.zst)
	b.Logf("image %s, zstd -3 %s (%.1fx)", agentapi.HumanBytes(size), agentapi.HumanBytes(zfi.Size()), float64(size)/float64(zfi.Size()))
	out := filepath.Join(dir, "out.img")
	needTool(b, "dd")

	// Each run starts from the same state: no output file and nothing
	// dirty in the page cache (sync(2) also flushes the previous run's
	// discards on file systems mounted with -o discard).
	reset := func() {
		os.Remove(out)
		unix.Sync()
	}
	stream := func(b *testing.B, open Opener, sha string, direct bool) time.Duration {
		reset()
		f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		dst := &diskFile{File: f}
		if direct {
			dst = openDirect(f, out)
			if dst.direct == nil {
				b.Fatal("no O_DIRECT here")
			}
			defer dst.Close()
		}
		start := time.Now()
		res, err := Stream(context.Background(), open, dst, StreamOptions{SHA256: sha})
		if err != nil {
			b.Fatal(err)
		}
		if res.Written != size {
			b.Fatalf("wrote %d of %d bytes", res.Written, size)
		}
		return time.Since(start)
	}
	shell := func(b *testing.B, script string) time.Duration {
		reset()
		start := time.Now()
		if o, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", script, err, o)
		}
		return time.Since(start)
	}
	mbps := func(d time.Duration, n int) float64 { return float64(size) / 1e6 / (d.Seconds() / float64(n)) }
	compare := func(b *testing.B, file, sha, script string) {
		var buffered, direct, sh time.Duration
		runs := []func(){
			func() { buffered += stream(b, fileOpener(file), sha, false) },
			func() { direct += stream(b, fileOpener(file), sha, true) },
			func() { sh += shell(b, script) },
		}
		shell(b, script) // warm-up, not counted
		for i := range b.N {
			// Rotate the order so no variant always runs first.
			for k := range runs {
				runs[(i+k)%len(runs)]()
			}
		}
		b.ReportMetric(mbps(buffered, b.N), "stream-MB/s")
		b.ReportMetric(mbps(direct, b.N), "direct-MB/s")
		b.ReportMetric(mbps(sh, b.N), "shell-MB/s")
		b.ReportMetric(sh.Seconds()/buffered.Seconds(), "ratio-stream")
		b.ReportMetric(sh.Seconds()/direct.Seconds(), "ratio-direct")
	}

	b.Run("zstd", func(b *testing.B) {
		compare(b, img.zst, img.zstSHA, fmt.Sprintf("zstd -dc %s | dd of=%s bs=8M conv=fsync status=none", img.zst, out))
	})
	b.Run("raw", func(b *testing.B) {
		compare(b, img.raw, img.rawSHA, fmt.Sprintf("dd if=%s of=%s bs=8M conv=fsync status=none", img.raw, out))
	})
	b.Run("zstd-http", func(b *testing.B) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, img.zst)
		}))
		defer ts.Close()
		var d time.Duration
		for range b.N {
			d += stream(b, (&HTTPSource{URL: ts.URL}).Open, img.zstSHA, true)
		}
		b.ReportMetric(mbps(d, b.N), "direct-MB/s")
	})
	os.Remove(out)
}
