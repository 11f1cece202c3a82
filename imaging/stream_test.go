package imaging

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackboot/rackboot/agentapi"
)

// fileTarget is an os.File in a temp dir used as a stream destination.
func fileTarget(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "target"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

// quickOptions keep retries fast in tests.
func quickOptions(t *testing.T, file []byte) StreamOptions {
	return StreamOptions{SHA256: sha256Hex(file), BufferSize: 64 << 10, Buffers: 3, RetryDelay: time.Millisecond, Logger: testLogger(t)}
}

func TestStreamFormats(t *testing.T) {
	img := pattern(3<<20+123, 0) // not a multiple of the buffer size
	for _, format := range []string{agentapi.FormatRaw, agentapi.FormatGzip, agentapi.FormatZstd, agentapi.FormatXz} {
		for _, declared := range []string{format, agentapi.FormatAuto} {
			t.Run(fmt.Sprintf("%s/declared=%q", format, declared), func(t *testing.T) {
				file := compress(t, format, img)
				dst := fileTarget(t, 8<<20)
				opt := quickOptions(t, file)
				opt.Format, opt.Offset, opt.Total = declared, mib, int64(len(img))
				res, err := Stream(context.Background(), bytesOpener(file), dst, opt)
				if err != nil {
					t.Fatal(err)
				}
				if res.Format != format || res.Written != int64(len(img)) || res.Received != int64(len(file)) || res.SHA256 != sha256Hex(file) {
					t.Errorf("result = %+v; want format %s, %d written, %d received", res, format, len(img), len(file))
				}
				got := make([]byte, len(img))
				if _, err := dst.ReadAt(got, mib); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, img) {
					t.Error("written bytes differ from the image")
				}
			})
		}
	}
}

func TestStreamChecksumMismatch(t *testing.T) {
	img := pattern(1<<20, 1)
	file := compress(t, agentapi.FormatZstd, img)
	opt := quickOptions(t, file)
	opt.SHA256 = sha256Hex(append([]byte("x"), file...))
	res, err := Stream(context.Background(), bytesOpener(file), fileTarget(t, 2<<20), opt)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Stream() = %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), sha256Hex(file)) {
		t.Errorf("error %q does not report the digest received", err)
	}
	if res.SHA256 != sha256Hex(file) {
		t.Errorf("result digest = %s", res.SHA256)
	}
}

func TestStreamRejectsMissingChecksum(t *testing.T) {
	if _, err := Stream(context.Background(), bytesOpener(nil), fileTarget(t, 1), StreamOptions{}); err == nil {
		t.Fatal("Stream without sha256 succeeded")
	}
}

func TestStreamLimit(t *testing.T) {
	img := pattern(1<<20, 2)
	file := compress(t, agentapi.FormatGzip, img)
	dst := fileTarget(t, 0)
	opt := quickOptions(t, file)
	opt.Limit = 1<<20 - 1
	_, err := Stream(context.Background(), bytesOpener(file), dst, opt)
	if !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("Stream() = %v, want ErrImageTooLarge", err)
	}
	fi, _ := dst.Stat()
	if fi.Size() > opt.Limit {
		t.Errorf("target grew to %d bytes, past the limit %d", fi.Size(), opt.Limit)
	}
}

func TestStreamProgress(t *testing.T) {
	img := pattern(2<<20, 3)
	file := compress(t, agentapi.FormatZstd, img)
	opt := quickOptions(t, file)
	opt.Total = int64(len(img))
	opt.ProgressInterval = time.Nanosecond
	var reports []Progress
	opt.Progress = func(p Progress) { reports = append(reports, p) }
	if _, err := Stream(context.Background(), bytesOpener(file), fileTarget(t, 0), opt); err != nil {
		t.Fatal(err)
	}
	if len(reports) < 2 {
		t.Fatalf("%d progress reports, want several", len(reports))
	}
	for i := 1; i < len(reports); i++ {
		if reports[i].Done < reports[i-1].Done {
			t.Errorf("progress went backwards: %+v then %+v", reports[i-1], reports[i])
		}
	}
	last := reports[len(reports)-1]
	if last.Phase != "image" || last.Done != int64(len(img)) || last.Total != int64(len(img)) || last.Received != int64(len(file)) || last.Rate <= 0 {
		t.Errorf("final report = %+v", last)
	}
}

// flakyOpener serves file but cuts every connection after cut bytes, and
// records the offsets asked for.
type flakyOpener struct {
	file    []byte
	cut     int
	offsets []int64
}

func (f *flakyOpener) open(_ context.Context, off int64) (io.ReadCloser, error) {
	f.offsets = append(f.offsets, off)
	end := min(int(off)+f.cut, len(f.file))
	return &cutReader{r: bytes.NewReader(f.file[off:end]), cut: end < len(f.file), size: int64(len(f.file))}, nil
}

type cutReader struct {
	r    *bytes.Reader
	cut  bool
	size int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF && c.cut {
		return n, errors.New("connection reset by peer")
	}
	return n, err
}
func (c *cutReader) Size() int64  { return c.size }
func (c *cutReader) Close() error { return nil }

// TestStreamResume cuts the compressed stream every 100 KiB: each format's
// decoder must keep going across the reconnections, and the digest must
// cover every byte exactly once.
func TestStreamResume(t *testing.T) {
	img := pattern(2<<20, 4)
	for _, format := range []string{agentapi.FormatRaw, agentapi.FormatGzip, agentapi.FormatZstd, agentapi.FormatXz} {
		t.Run(format, func(t *testing.T) {
			file := compress(t, format, img)
			src := &flakyOpener{file: file, cut: 100 << 10}
			dst := fileTarget(t, 0)
			res, err := Stream(context.Background(), src.open, dst, quickOptions(t, file))
			if err != nil {
				t.Fatal(err)
			}
			wantOpens := (len(file) + src.cut - 1) / src.cut
			if len(src.offsets) != wantOpens || res.Resumes != wantOpens-1 {
				t.Errorf("%d opens, %d resumes; want %d opens", len(src.offsets), res.Resumes, wantOpens)
			}
			for i, off := range src.offsets {
				if off != int64(i*src.cut) {
					t.Errorf("open %d at offset %d, want %d", i, off, i*src.cut)
				}
			}
			got, _ := os.ReadFile(dst.Name())
			if !bytes.Equal(got, img) {
				t.Error("written bytes differ from the image")
			}
		})
	}
}

func TestStreamGivesUp(t *testing.T) {
	file := compress(t, agentapi.FormatZstd, pattern(1<<20, 5))
	var calls atomic.Int32
	failing := func(context.Context, int64) (io.ReadCloser, error) {
		calls.Add(1)
		return nil, errors.New("connection refused")
	}
	opt := quickOptions(t, file)
	opt.Retries = 3
	if _, err := Stream(context.Background(), failing, fileTarget(t, 0), opt); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Stream() = %v, want the opener's error", err)
	}
	if calls.Load() != 4 {
		t.Errorf("%d attempts, want 1 + 3 retries", calls.Load())
	}

	calls.Store(0)
	permanent := func(context.Context, int64) (io.ReadCloser, error) {
		calls.Add(1)
		return nil, Permanent(errors.New("404 Not Found"))
	}
	if _, err := Stream(context.Background(), permanent, fileTarget(t, 0), opt); err == nil || calls.Load() != 1 {
		t.Fatalf("Stream() = %v after %d attempts, want the permanent error after 1", err, calls.Load())
	}
}

func TestStreamImageChangedSize(t *testing.T) {
	file := compress(t, agentapi.FormatRaw, pattern(1<<20, 6))
	n := 0
	open := func(_ context.Context, off int64) (io.ReadCloser, error) {
		n++
		return &cutReader{r: bytes.NewReader(file[off : off+1000]), cut: true, size: int64(len(file) + n)}, nil
	}
	_, err := Stream(context.Background(), open, fileTarget(t, 0), quickOptions(t, file))
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("Stream() = %v, want image changed", err)
	}
}

func TestStreamContextCancelled(t *testing.T) {
	file := compress(t, agentapi.FormatRaw, pattern(1<<20, 7))
	ctx, cancel := context.WithCancel(context.Background())
	open := func(ctx context.Context, off int64) (io.ReadCloser, error) {
		cancel()
		return nil, errors.New("unreachable")
	}
	if _, err := Stream(ctx, open, fileTarget(t, 0), quickOptions(t, file)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream() = %v, want context.Canceled", err)
	}
}
