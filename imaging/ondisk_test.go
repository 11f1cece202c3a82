package imaging

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/imaging/internal/testimage"
)

// TestAssembleOnDisk: OnDisk names every chunk past the held head once,
// and only when the target already holds its bytes: in place,
// copied, fetched or zeroed alike. A failed assembly names only chunks
// before the failed one.
func TestAssembleOnDisk(t *testing.T) {
	dir := t.TempDir()
	v1 := testimage.Bytes(7, 6<<20)
	v2 := testimage.Next(v1, 5000)
	r1 := importBytes(t, dir, v1)
	r2 := importBytes(t, dir, v2)
	ix := r2.Index
	const hold = 1 << 20

	check := func(t *testing.T, f *os.File, got *[]int) func(int) {
		return func(i int) {
			c := ix.Chunks[i]
			b := make([]byte, c.Size)
			if _, err := f.ReadAt(b, c.Offset); err != nil {
				t.Errorf("chunk %d: %v", i, err)
				return
			}
			if c.ID.IsZero() && !chunkstore.IsZero(b) || !c.ID.IsZero() && chunkstore.ChunkID(sha256.Sum256(b)) != c.ID {
				t.Errorf("chunk %d at byte %d reported on the disk before its bytes are", i, c.Offset)
			}
			*got = append(*got, i)
		}
	}
	t.Run("all", func(t *testing.T) {
		p := writeFile(t, append(bytes.Clone(v1), make([]byte, 1<<20)...))
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var got []int
		opt := AssembleOptions{Index: ix, Seed: r1.Index, Source: newStoreFS(dir), Hold: hold, RetryDelay: 1, Logger: testLogger(t)}
		opt.OnDisk = check(t, f, &got)
		res, err := Assemble(t.Context(), f, opt)
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for i, c := range ix.Chunks {
			if c.Offset >= hold {
				want = append(want, i)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("OnDisk named %d chunks (%v…), want the %d past the head, each once", len(got), got[:min(len(got), 8)], len(want))
		}
		if res.ChunksInPlace == 0 || res.ChunksCopied == 0 || res.ChunksFetched == 0 {
			t.Errorf("the test wants chunks of every origin: %+v", res)
		}
	})
	t.Run("failed", func(t *testing.T) {
		victim := len(ix.Chunks) / 2
		for ix.Chunks[victim].ID.IsZero() {
			victim++
		}
		store := newStoreFS(dir)
		os.Remove(chunkstore.ChunkPath(dir, ix.Chunks[victim].ID))
		defer importBytes(t, dir, v2)
		p := writeFile(t, make([]byte, len(v2)))
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var got []int
		opt := AssembleOptions{Index: ix, Source: store, RetryDelay: 1, Logger: testLogger(t)}
		opt.OnDisk = check(t, f, &got)
		if _, err := Assemble(t.Context(), f, opt); !errors.Is(err, ErrChunk) {
			t.Fatalf("err %v, want ErrChunk", err)
		}
		for _, i := range got {
			if i >= victim {
				t.Fatalf("chunk %d named on the disk; the assembly failed at chunk %d", i, victim)
			}
		}
	})
}
