package artifacts

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/rackboot/rackboot/agentapi"
)

// testRaw is an image's contents: compressible, and not all one byte.
func testRaw(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i / 4096 * 7)
	}
	return b
}

func zstdFile(t *testing.T, raw []byte, stream bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	if stream {
		// A streaming encoder does not know the size: no content size in
		// the frame header, as with `zstd < in > out`.
		if _, err := enc.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	defer enc.Close()
	return enc.EncodeAll(raw, nil)
}

func TestSizes(t *testing.T) {
	raw := testRaw(3<<20 + 123)
	small := testRaw(200)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	var xzb bytes.Buffer
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(raw)
	xw.Close()
	// Two frames and a skippable frame between them, as pzstd writes.
	skippable := []byte{0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}
	multi := append(append(zstdFile(t, raw, false), skippable...), zstdFile(t, small, false)...)

	dir := t.TempDir()
	for _, tt := range []struct {
		name, format string
		data         []byte
		want         int64
	}{
		{"frame-size.img.zst", agentapi.FormatZstd, zstdFile(t, raw, false), int64(len(raw))},
		{"stream.img.zst", agentapi.FormatZstd, zstdFile(t, raw, true), int64(len(raw))},
		{"multi.img.zst", agentapi.FormatZstd, multi, int64(len(raw) + len(small))},
		{"small.img.zst", agentapi.FormatZstd, zstdFile(t, small, false), int64(len(small))},
		{"detected.img", agentapi.FormatAuto, zstdFile(t, raw, true), int64(len(raw))},
		{"disk.img.gz", agentapi.FormatGzip, gz.Bytes(), int64(len(raw))},
		{"disk.img.xz", agentapi.FormatXz, xzb.Bytes(), int64(len(raw))},
		{"disk.img", agentapi.FormatRaw, raw, int64(len(raw))},
		{"sub/dir/disk.img", agentapi.FormatAuto, raw, int64(len(raw))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			s := &Sizes{Dir: dir}
			stored, got, err := s.Image(tt.name, tt.format)
			if err != nil || stored != int64(len(tt.data)) || got != tt.want {
				t.Errorf("Image() = %d, %d, %v; want %d, %d", stored, got, err, len(tt.data), tt.want)
			}
		})
	}
}

// TestSizesRemembers: an image is measured once per version of the file.
func TestSizesRemembers(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "os.img.zst")
	raw := testRaw(1 << 20)
	if err := os.WriteFile(p, zstdFile(t, raw, true), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Sizes{Dir: dir}
	if _, n, err := s.Image("os.img.zst", agentapi.FormatZstd); err != nil || n != 1<<20 {
		t.Fatalf("first: %d, %v", n, err)
	}
	first := s.raw.known["zstd\x00os.img.zst"]
	if _, n, _ := s.Image("os.img.zst", agentapi.FormatZstd); n != 1<<20 || s.raw.known["zstd\x00os.img.zst"] != first {
		t.Error("measured again an unchanged file")
	}
	// A new version of the image under the same name is measured anew.
	if err := os.WriteFile(p, zstdFile(t, raw[:1000], true), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(p, later, later)
	if _, n, err := s.Image("os.img.zst", agentapi.FormatZstd); err != nil || n != 1000 {
		t.Errorf("after the file changed: %d, %v; want 1000", n, err)
	}
}

func TestSizesErrors(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.img"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(outside, "secret.img"), filepath.Join(dir, "escape.img"))
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	os.WriteFile(filepath.Join(dir, "broken.img.zst"), []byte{0x28, 0xB5, 0x2F, 0xFD, 0xFF, 0xFF}, 0o644)
	s := &Sizes{Dir: dir}
	for _, tt := range []struct{ name, format, want string }{
		{"missing.img.zst", agentapi.FormatZstd, "missing.img.zst"},
		{"../" + filepath.Base(outside) + "/secret.img", agentapi.FormatRaw, "secret.img"},
		{"escape.img", agentapi.FormatRaw, "escape.img"},
		{"adir", agentapi.FormatRaw, "not a regular file"},
		{"broken.img.zst", agentapi.FormatZstd, "decompressing"},
	} {
		if _, _, err := s.Image(tt.name, tt.format); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Image(%q) error = %v, want one naming %q", tt.name, err, tt.want)
		}
	}
}

// FuzzZstdContentSize: whatever the file, the frame walk neither panics
// nor claims a size for a file that is not whole frames.
func FuzzZstdContentSize(f *testing.F) {
	f.Add([]byte{0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x05, 0x29, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := zstdContentSize(bytes.NewReader(b), int64(len(b)))
		if ok && n < 0 {
			t.Fatalf("size %d", n)
		}
	})
}

// TestZstdFrameWalk: sizes stated in the frame headers are read without
// decompressing; a frame without one sends the caller to decompress.
func TestZstdFrameWalk(t *testing.T) {
	raw := testRaw(5<<20 + 1)
	for _, tt := range []struct {
		name   string
		data   []byte
		want   int64
		wantOK bool
	}{
		{"stated", zstdFile(t, raw, false), int64(len(raw)), true},
		{"streamed", zstdFile(t, raw, true), 0, false},
		{"truncated", zstdFile(t, raw, false)[:1000], 0, false},
		{"trailing garbage", append(zstdFile(t, raw, false), 1, 2, 3, 4, 5), 0, false},
	} {
		n, ok := zstdContentSize(bytes.NewReader(tt.data), int64(len(tt.data)))
		if ok != tt.wantOK || ok && n != tt.want {
			t.Errorf("%s: %d, %v; want %d, %v", tt.name, n, ok, tt.want, tt.wantOK)
		}
	}
}
