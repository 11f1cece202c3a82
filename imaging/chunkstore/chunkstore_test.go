package chunkstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/imaging/internal/testimage"
)

func importBytes(t *testing.T, store string, img []byte) *ImportResult {
	t.Helper()
	res, err := Import(context.Background(), bytes.NewReader(img), store, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Index.Size != int64(len(img)) || res.Index.SHA256 != sha256.Sum256(img) {
		t.Fatalf("index of %d bytes, digest %s; want %d bytes", res.Index.Size, res.Index.Digest(), len(img))
	}
	return res
}

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// TestChunkingDeterministic: the same image gives the same index, in a
// fresh store or the same one, which then stores nothing new; the index
// survives its file format and a damaged one is refused.
func TestChunkingDeterministic(t *testing.T) {
	img := testimage.Bytes(1, 6<<20)
	a := importBytes(t, t.TempDir(), img)
	store := t.TempDir()
	b := importBytes(t, store, img)
	c := importBytes(t, store, img)
	if !cmp.Equal(a.Index, b.Index) || !cmp.Equal(b.Index, c.Index) {
		t.Fatal("two imports of one image gave different indexes")
	}
	if b.NewChunks == 0 || c.NewChunks != 0 || c.NewStored != 0 {
		t.Errorf("new chunks: first import %d, second %d (%d bytes); want some, then none", b.NewChunks, c.NewChunks, c.NewStored)
	}
	if a.ZeroChunks == 0 || a.ZeroBytes < 512<<10 {
		t.Errorf("%d zero chunks, %d bytes: the 1 MiB zero run was stored", a.ZeroChunks, a.ZeroBytes)
	}
	for _, ch := range a.Index.Chunks {
		if ch.Size > MaxChunk || (ch.Size < MinChunk && ch.Offset+ch.Size != a.Index.Size) {
			t.Fatalf("chunk of %d bytes at %d", ch.Size, ch.Offset)
		}
	}
	var buf bytes.Buffer
	if _, err := a.Index.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadIndex(bytes.NewReader(buf.Bytes()))
	if err != nil || !cmp.Equal(back, a.Index) {
		t.Fatalf("index read back differs: %v", err)
	}
	for _, cut := range []int{0, 10, buf.Len() / 2, buf.Len() - 1} {
		if _, err := ReadIndex(bytes.NewReader(buf.Bytes()[:cut])); !errors.Is(err, ErrIndex) {
			t.Errorf("index cut at %d: err %v, want ErrIndex", cut, err)
		}
	}
	bad := bytes.Clone(buf.Bytes())
	bad[indexHeaderLen+5] ^= 1
	if _, err := ReadIndex(bytes.NewReader(bad)); !errors.Is(err, ErrIndex) {
		t.Errorf("damaged index: err %v, want ErrIndex", err)
	}
}

// TestImportStoresOnlyNewChunks imports v1, then v2 one "package" apart.
func TestImportStoresOnlyNewChunks(t *testing.T) {
	store := t.TempDir()
	v1 := testimage.Bytes(1, 8<<20)
	r1 := importBytes(t, store, v1)
	r2 := importBytes(t, store, testimage.Next(v1, 0))
	if r2.NewChunks == 0 || r2.NewChunks > 8 {
		t.Errorf("v2 added %d chunks, want a few (2 changed places)", r2.NewChunks)
	}
	if r2.NewRaw*10 > r2.Index.Size {
		t.Errorf("v2 added %d of %d bytes", r2.NewRaw, r2.Index.Size)
	}
	n := 0
	filepath.WalkDir(store, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n != r1.NewChunks+r2.NewChunks {
		t.Errorf("the store holds %d files, want %d + %d", n, r1.NewChunks, r2.NewChunks)
	}
	// An xz- or zstd-compressed file gives the same index.
	z := zstdBytes(t, v1)
	rz, err := Import(context.Background(), bytes.NewReader(z), store, ImportOptions{})
	if err != nil || !cmp.Equal(rz.Index.Chunks, r1.Index.Chunks) || rz.Index.SHA256 != r1.Index.SHA256 || rz.NewChunks != 0 {
		t.Errorf("the zstd file of v1: %v, new chunks %d", err, rz.NewChunks)
	}
	// Its source is the compressed file, that of the raw import the image.
	if rz.Index.Source != sha256.Sum256(z) || r1.Index.Source != r1.Index.SHA256 {
		t.Errorf("source digests %s and %s", rz.Index.SourceDigest(), r1.Index.SourceDigest())
	}
}
