package imaging

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/imaging/internal/testimage"
)

// TestAssembleSpread: a Spread assembly writes the same image as an
// in-order one, fetching the same chunks, each distinct one once, from
// any starting disk; OnDisk names every chunk past the head once.
func TestAssembleSpread(t *testing.T) {
	dir := t.TempDir()
	v1 := testimage.Bytes(31, 6<<20)
	v2 := testimage.Next(v1, 5000)
	var repeated []byte // v2 with its first MiB again at the end
	repeated = append(append(repeated, v2...), v2[:1<<20]...)
	r1 := importBytes(t, dir, v1)
	for _, tc := range []struct {
		name string
		disk []byte
		img  []byte
		seed bool
		hold int64
	}{
		{"fresh", nil, v2, false, 0},
		{"fresh-held-head", nil, v2, false, 1 << 20},
		{"over-v1-in-place", v1, v2, false, 0},
		{"over-v1-seed", v1, v2, true, 0},
		{"repeated-chunks", nil, repeated, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := importBytes(t, dir, tc.img)
			disk := make([]byte, len(tc.img)+(1<<20))
			copy(disk, tc.disk)
			results := map[bool]AssembleResult{}
			fetched := map[bool]map[chunkstore.ChunkID]int{}
			for _, spread := range []bool{false, true} {
				store := newStoreFS(dir)
				p := writeFile(t, disk)
				var mu sync.Mutex
				named := map[int]int{}
				opt := AssembleOptions{Index: r.Index, Source: store, Spread: spread, Hold: tc.hold,
					OnDisk: func(i int) { mu.Lock(); named[i]++; mu.Unlock() }}
				if tc.seed {
					opt.Seed = r1.Index
				}
				res, err := assembleFile(t, p, opt)
				if err != nil {
					t.Fatalf("spread %v: %v", spread, err)
				}
				checkFile(t, p, tc.img)
				if res.SHA256 != r.Index.Digest() || res.InPlace+res.Copied+res.FetchedRaw+res.Zeroed != res.Size || res.Fetched != store.bytes {
					t.Errorf("spread %v: result %+v, the store sent %d bytes", spread, res, store.bytes)
				}
				for i, c := range r.Index.Chunks {
					if want := c.Offset >= tc.hold; (named[i] == 1) != want || named[i] > 1 {
						t.Errorf("spread %v: chunk %d at byte %d named %d times", spread, i, c.Offset, named[i])
					}
				}
				results[spread], fetched[spread] = res, store.fetched
			}
			if !maps.Equal(fetched[false], fetched[true]) {
				t.Errorf("fetched %d distinct chunks in order, %d spread", len(fetched[false]), len(fetched[true]))
			}
			for id, n := range fetched[true] {
				if n != 1 {
					t.Errorf("chunk %s fetched %d times", id, n)
				}
			}
			a, b := results[false], results[true]
			if a.ChunksFetched != b.ChunksFetched || a.FetchedRaw != b.FetchedRaw || a.Written != b.Written || a.ChunksInPlace != b.ChunksInPlace {
				t.Errorf("in order %+v\nspread   %+v", a, b)
			}
		})
	}
}

// TestAssembleSpreadOrder: the chunks are fetched in Shuffle's order.
func TestAssembleSpreadOrder(t *testing.T) {
	dir := t.TempDir()
	img := testimage.Bytes(32, 3<<20)
	r := importBytes(t, dir, img)
	store := newStoreFS(dir)
	p := writeFile(t, make([]byte, len(img)))
	var want []chunkstore.ChunkID
	_, err := assembleFile(t, p, AssembleOptions{Index: r.Index, Source: store, Spread: true, Workers: 1,
		Shuffle: func(first []int) {
			slices.Reverse(first)
			for _, i := range first {
				want = append(want, r.Index.Chunks[i].ID)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, img)
	if len(want) < 10 || !slices.Equal(store.order, want) {
		t.Errorf("fetched %d chunks in another order than the %d Shuffle gave", len(store.order), len(want))
	}
}

// dropWrite loses the writes at one offset, as a disk that lies would.
type dropWrite struct {
	*os.File
	at int64
}

func (d *dropWrite) WriteAt(p []byte, off int64) (int, error) {
	if off == d.at {
		return len(p), nil
	}
	return d.File.WriteAt(p, off)
}

// TestAssembleSpreadReadBack: the digest is of what is on the target: a
// write that did not land fails the assembly; so does a chunk that
// cannot be fetched. A target that cannot be read is refused before
// anything is written.
func TestAssembleSpreadReadBack(t *testing.T) {
	dir := t.TempDir()
	img := testimage.Bytes(33, 3<<20)
	r := importBytes(t, dir, img)
	victim := r.Index.Chunks[len(r.Index.Chunks)/3]
	if victim.ID.IsZero() {
		t.Fatal("the victim is a zero chunk")
	}
	t.Run("lost-write", func(t *testing.T) {
		f, err := os.OpenFile(writeFile(t, bytes.Repeat([]byte{0xee}, len(img))), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, err = Assemble(t.Context(), &dropWrite{File: f, at: victim.Offset},
			AssembleOptions{Index: r.Index, Source: newStoreFS(dir), Spread: true, RetryDelay: 1, Logger: testLogger(t)})
		if !errors.Is(err, ErrChecksum) {
			t.Errorf("err = %v, want ErrChecksum", err)
		}
	})
	t.Run("missing-chunk", func(t *testing.T) {
		d2 := t.TempDir()
		importBytes(t, d2, img)
		os.Remove(chunkstore.ChunkPath(d2, victim.ID))
		_, err := assembleFile(t, writeFile(t, make([]byte, len(img))), AssembleOptions{Index: r.Index, Source: newStoreFS(d2), Spread: true})
		if !errors.Is(err, ErrChunk) {
			t.Errorf("err = %v, want ErrChunk", err)
		}
	})
	t.Run("unreadable-target", func(t *testing.T) {
		store := newStoreFS(dir)
		_, err := Assemble(t.Context(), writeOnly{io.Discard}, AssembleOptions{Index: r.Index, Source: store, Spread: true})
		if err == nil || store.count() != 0 {
			t.Errorf("err = %v after %d fetches; want a refusal before any", err, store.count())
		}
	})
}

type writeOnly struct{ w io.Writer }

func (w writeOnly) WriteAt(p []byte, off int64) (int, error) { return w.w.Write(p) }
