package imaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/imaging/internal/testimage"
)

// storeFS is a chunk store in a directory, counting what it serves.
type storeFS struct {
	dir     string
	indexes map[string]*chunkstore.Index
	mu      sync.Mutex
	fetched map[chunkstore.ChunkID]int
	order   []chunkstore.ChunkID // every fetch, in order
	bytes   int64
	damage  func(id chunkstore.ChunkID, try int, z []byte) // may change z
}

func newStoreFS(dir string) *storeFS {
	return &storeFS{dir: dir, indexes: map[string]*chunkstore.Index{}, fetched: map[chunkstore.ChunkID]int{}}
}

func (s *storeFS) Fetch(ctx context.Context, id chunkstore.ChunkID, stored int64) ([]byte, error) {
	s.mu.Lock()
	s.fetched[id]++
	s.order = append(s.order, id)
	try := s.fetched[id]
	s.mu.Unlock()
	z, err := os.ReadFile(chunkstore.ChunkPath(s.dir, id))
	if err != nil {
		return nil, Permanent(err)
	}
	s.mu.Lock()
	s.bytes += int64(len(z))
	s.mu.Unlock()
	if s.damage != nil {
		s.damage(id, try, z)
	}
	return z, nil
}

func (s *storeFS) Index(ctx context.Context, url string) (*chunkstore.Index, error) {
	if ix, ok := s.indexes[url]; ok {
		return ix, nil
	}
	return nil, Permanent(fmt.Errorf("no index %s", url))
}

func (s *storeFS) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.fetched {
		n += c
	}
	return n
}

func importBytes(t *testing.T, store string, img []byte) *chunkstore.ImportResult {
	t.Helper()
	res, err := chunkstore.Import(context.Background(), bytes.NewReader(img), store, chunkstore.ImportOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Index.Size != int64(len(img)) || res.Index.SHA256 != sha256.Sum256(img) {
		t.Fatalf("index of %d bytes, digest %s; want %d bytes", res.Index.Size, res.Index.Digest(), len(img))
	}
	return res
}

// writeFile writes b to a new file and returns its path.
func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "target.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// assembleFile assembles ix onto the file at p.
func assembleFile(t *testing.T, p string, opt AssembleOptions) (AssembleResult, error) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opt.RetryDelay, opt.Logger = 1, testLogger(t)
	return Assemble(context.Background(), f, opt)
}

func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:min(len(got), len(want))], want) || len(got) < len(want) {
		t.Errorf("the target does not hold the image (%d bytes, want %d)", len(got), len(want))
	}
}

// TestAssembleFetchesOnlyChanges assembles v2 onto a file holding v1:
// only the changed chunks are fetched, with and without a seed, and with
// bytes inserted (everything behind them moved) only with the seed.
func TestAssembleFetchesOnlyChanges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shift int
		seed  bool
	}{{"in-place", 0, false}, {"moved-seed", 5000, true}, {"moved-noseed", 5000, false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			v1 := testimage.Bytes(1, 8<<20)
			v2 := testimage.Next(v1, tc.shift)
			r1 := importBytes(t, dir, v1)
			r2 := importBytes(t, dir, v2)
			old := map[chunkstore.ChunkID]bool{}
			for _, c := range r1.Index.Chunks {
				old[c.ID] = true
			}
			changed := map[chunkstore.ChunkID]bool{}
			for _, c := range r2.Index.Chunks {
				if !old[c.ID] {
					changed[c.ID] = true
				}
			}
			store := newStoreFS(dir)
			// The disk is larger than the image, as disks are.
			p := writeFile(t, append(bytes.Clone(v1), make([]byte, 1<<20)...))
			opt := AssembleOptions{Index: r2.Index, Source: store}
			if tc.seed {
				opt.Seed = r1.Index
			}
			res, err := assembleFile(t, p, opt)
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, p, v2)
			t.Logf("%+v", res)
			for id := range store.fetched {
				if !changed[id] && tc.name != "moved-noseed" {
					t.Errorf("fetched chunk %s, which v1 has", id)
				}
			}
			switch {
			case tc.name == "moved-noseed":
				if res.ChunksFetched < res.Chunks/2 {
					t.Errorf("fetched %d of %d chunks without a seed after a shift, expected most", res.ChunksFetched, res.Chunks)
				}
			case store.count() != len(changed):
				t.Errorf("fetched %d chunks, want the %d v1 lacks", store.count(), len(changed))
			}
			if tc.seed && res.ChunksCopied < res.Chunks/2 {
				t.Errorf("copied %d chunks of %d from the seed", res.ChunksCopied, res.Chunks)
			}
			if res.Size != int64(len(v2)) || res.InPlace+res.Copied+res.FetchedRaw+res.Zeroed != res.Size || res.SHA256 != r2.Index.Digest() {
				t.Errorf("result %+v", res)
			}
			if res.Fetched != store.bytes {
				t.Errorf("result says %d bytes fetched, the store served %d", res.Fetched, store.bytes)
			}
		})
	}
}

// TestAssembleDamagedChunk: a chunk damaged in the store, or every time
// in transit, fails the assembly naming it; damaged once in transit, it
// is fetched again.
func TestAssembleDamagedChunk(t *testing.T) {
	dir := t.TempDir()
	img := testimage.Bytes(2, 4<<20)
	r := importBytes(t, dir, img)
	victim := r.Index.Chunks[3]
	for _, tc := range []struct {
		name  string
		bad   func(try int) bool
		fails bool
	}{{"store", func(int) bool { return true }, true}, {"transit-once", func(try int) bool { return try == 1 }, false}} {
		t.Run(tc.name, func(t *testing.T) {
			store := newStoreFS(dir)
			store.damage = func(id chunkstore.ChunkID, try int, z []byte) {
				if id == victim.ID && tc.bad(try) {
					z[len(z)/2] ^= 0x40
				}
			}
			p := writeFile(t, make([]byte, len(img)))
			res, err := assembleFile(t, p, AssembleOptions{Index: r.Index, Source: store})
			if !tc.fails {
				if err != nil || res.FetchRetries != 1 {
					t.Fatalf("err %v, %d retries; want success after one", err, res.FetchRetries)
				}
				checkFile(t, p, img)
				return
			}
			if !errors.Is(err, ErrChunk) || !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), victim.ID.String()) ||
				!strings.Contains(err.Error(), fmt.Sprint("byte ", victim.Offset)) {
				t.Fatalf("err = %v; want ErrChunk and ErrChecksum naming chunk %s at byte %d", err, victim.ID, victim.Offset)
			}
		})
	}
	// A chunk missing from the store is not retried.
	store := newStoreFS(dir)
	os.Remove(chunkstore.ChunkPath(dir, victim.ID))
	_, err := assembleFile(t, writeFile(t, make([]byte, len(img))), AssembleOptions{Index: r.Index, Source: store})
	if !errors.Is(err, ErrChunk) || store.fetched[victim.ID] != 1 {
		t.Errorf("missing chunk: err %v after %d tries; want ErrChunk after 1", err, store.fetched[victim.ID])
	}
}

// TestAssembleResumes: an assembly stopped halfway (the agent killed),
// started again, fetches only what the first did not write; over HTTP, a
// chunk whose transfer is cut is fetched again.
func TestAssembleResumes(t *testing.T) {
	dir := t.TempDir()
	img := testimage.Bytes(3, 6<<20)
	r := importBytes(t, dir, img)
	p := writeFile(t, make([]byte, len(img)))

	// The first run stops at chunk 30, missing from the store: every
	// chunk before it is written.
	store := newStoreFS(dir)
	stop := r.Index.Chunks[30]
	store.damage = func(id chunkstore.ChunkID, try int, z []byte) {
		if id == stop.ID {
			clear(z)
		}
	}
	_, err := assembleFile(t, p, AssembleOptions{Index: r.Index, Source: store})
	if !errors.Is(err, ErrChunk) {
		t.Fatalf("first assembly: err %v, want ErrChunk", err)
	}
	var before30 int
	for _, c := range r.Index.Chunks[:30] {
		if !c.ID.IsZero() {
			before30++
		}
	}

	// The second run, over HTTP, with the transfer of two chunks cut
	// halfway the first time each is asked for.
	var cuts atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(req.URL.Path, "/chunks/")))
		if err != nil {
			http.NotFound(w, req)
			return
		}
		if cuts.Load() < 2 && cuts.Add(1) <= 2 {
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.Write(b[:len(b)/2])
			panic(http.ErrAbortHandler)
		}
		store.mu.Lock()
		store.fetched[chunkstore.ChunkID{}]++ // counts requests served whole
		store.mu.Unlock()
		w.Write(b)
	}))
	defer hs.Close()
	res, err := assembleFile(t, p, AssembleOptions{Index: r.Index, Source: &HTTPChunks{Base: hs.URL + "/chunks"}})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, img)
	if res.ChunksInPlace < before30 || res.ChunksFetched+res.ChunksInPlace+res.ChunksZeroed != res.Chunks || res.FetchRetries != 2 {
		t.Errorf("second run: %d chunks in place, %d fetched (%d retries), of %d; want the %d before the failed one in place and 2 retries",
			res.ChunksInPlace, res.ChunksFetched, res.FetchRetries, res.Chunks, before30)
	}
	if got := store.fetched[chunkstore.ChunkID{}]; got != res.ChunksFetched {
		t.Errorf("the server sent %d chunks whole, the assembly counts %d fetched", got, res.ChunksFetched)
	}
}

// TestAssembleProbes: after a long run of chunks not in place, only some
// are looked for, and finding one resumes the full check.
func TestAssembleProbes(t *testing.T) {
	dir := t.TempDir()
	img := testimage.Bytes(4, 12<<20)
	r := importBytes(t, dir, img)
	// The target holds the image except for garbage over its first 80
	// chunks, as a disk does after an install cut short.
	target := bytes.Clone(img)
	end := r.Index.Chunks[80].Offset
	copy(target, testimage.Bytes(77, int(end)))
	p := writeFile(t, target)
	// A small window: the dispatcher hears of the misses soon enough.
	res, err := assembleFile(t, p, AssembleOptions{Index: r.Index, Source: newStoreFS(dir), Window: 1 << 20, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, img)
	rest := len(r.Index.Chunks) - 80
	if res.ChunksUnchecked == 0 || res.ChunksInPlace < rest-probeEvery {
		t.Errorf("%d chunks unchecked, %d in place; want some unchecked and at least %d of the last %d in place",
			res.ChunksUnchecked, res.ChunksInPlace, rest-probeEvery, rest)
	}
	t.Logf("%+v", res)
}

// TestAssembleFetchesEachChunkOnce: a chunk the image has several times
// is fetched once.
func TestAssembleFetchesEachChunkOnce(t *testing.T) {
	dir := t.TempDir()
	block := testimage.Bytes(8, 1<<20)
	var img []byte
	for range 6 {
		img = append(img, block...)
	}
	r := importBytes(t, dir, img)
	store := newStoreFS(dir)
	p := writeFile(t, make([]byte, len(img)))
	res, err := assembleFile(t, p, AssembleOptions{Index: r.Index, Source: store})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, img)
	for id, n := range store.fetched {
		if n != 1 {
			t.Errorf("chunk %s fetched %d times", id, n)
		}
	}
	if res.Fetched != store.bytes || res.ChunksFetched <= len(store.fetched) {
		t.Errorf("%d bytes fetched, the store sent %d; %d chunks written from %d fetches", res.Fetched, store.bytes, res.ChunksFetched, len(store.fetched))
	}
}

// TestAssembleBatches: over HTTP, the chunks are asked for many at a
// time, in Spread's second pass too; a store that refuses batches gets
// them one by one.
func TestAssembleBatches(t *testing.T) {
	dir := t.TempDir()
	img := testimage.Bytes(6, 12<<20)
	r := importBytes(t, dir, img)
	for _, tc := range []struct{ batches, spread bool }{{true, false}, {false, false}, {true, true}} {
		batches := tc.batches
		var single, multi, chunks atomic.Int32
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if ids := req.URL.Query().Get("ids"); ids != "" {
				if !batches {
					http.NotFound(w, req)
					return
				}
				multi.Add(1)
				for _, id := range strings.Split(ids, ",") {
					b, err := os.ReadFile(filepath.Join(dir, id[:4], id+".zst"))
					if err != nil {
						t.Errorf("batch names %s: %v", id, err)
					}
					chunks.Add(1)
					w.Write(b)
				}
				return
			}
			single.Add(1)
			b, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(req.URL.Path, "/chunks/")))
			if err != nil {
				http.NotFound(w, req)
				return
			}
			w.Write(b)
		}))
		p := writeFile(t, make([]byte, len(img)))
		res, err := assembleFile(t, p, AssembleOptions{Index: r.Index, Source: &HTTPChunks{Base: hs.URL + "/chunks"}, Spread: tc.spread})
		hs.Close()
		if err != nil {
			t.Fatal(err)
		}
		checkFile(t, p, img)
		t.Logf("batches %v, spread %v: %d batch requests for %d chunks, %d single; %+v", batches, tc.spread, multi.Load(), chunks.Load(), single.Load(), res)
		switch {
		case batches && (int(chunks.Load()) != res.ChunksFetched || multi.Load() >= chunks.Load() || single.Load() != 0):
			t.Errorf("%d chunks fetched in %d batches and %d alone", chunks.Load(), multi.Load(), single.Load())
		case !batches && (int(single.Load()) != res.ChunksFetched || multi.Load() != 0):
			t.Errorf("refused batches: %d chunks fetched alone, %d batches served", single.Load(), multi.Load())
		}
	}
}

// TestAssembleZeroesWithoutWriting: on a target that does not hold the
// image (garbage everywhere), the zero chunks after the probes give up
// are zeroed in place (fallocate) rather than read and written.
func TestAssembleZeroesWithoutWriting(t *testing.T) {
	dir := t.TempDir()
	img := append(testimage.Bytes(9, 8<<20), make([]byte, 8<<20)...)
	img = append(img, testimage.Bytes(10, 2<<20)...)
	r := importBytes(t, dir, img)
	p := writeFile(t, testimage.Bytes(11, len(img)))
	res, err := assembleFile(t, p, AssembleOptions{Index: r.Index, Source: newStoreFS(dir), Window: 1 << 20, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, p, img)
	if res.ChunksZeroed == 0 || res.Punched < 4<<20 {
		t.Errorf("%d zero chunks (%d bytes, %d without writing) zeroed; want most of the 8 MiB zero run without writing",
			res.ChunksZeroed, res.Zeroed, res.Punched)
	}
	t.Logf("%+v", res)
}
