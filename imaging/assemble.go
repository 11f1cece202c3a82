package imaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// ChunkSource fetches a chunk, compressed, from the chunk store or a
// peer. HTTPChunks is the agent's; PeerChunks the agent's with peer
// distribution.
type ChunkSource interface {
	// Fetch returns a zstd frame of chunk id: its stored bytes, stored
	// bytes long according to the index, or another compression of the
	// same bytes (a peer's, see ChunkServer). Assemble verifies what it
	// decodes. An error wrapped with Permanent is not retried.
	Fetch(ctx context.Context, id chunkstore.ChunkID, stored int64) ([]byte, error)
}

// BatchSource is a ChunkSource that also fetches several chunks in one
// request (HTTPChunks does). Assemble gathers the chunks its workers need
// at the same time into such requests: one request per dozens of chunks
// instead of one each, which costs the appliance and the agent most of
// their time in a first install.
type BatchSource interface {
	ChunkSource
	// FetchMany returns the stored bytes of each chunk, in order; an
	// error fails them all (they are then fetched one by one). A nil
	// entry means "not now, ask again later" (peer distribution: a peer
	// is receiving the chunk from the appliance); a Spread assembly's
	// second pass fetches it again after the others, the in-order pass
	// at once through Fetch.
	FetchMany(ctx context.Context, chunks []chunkstore.IndexChunk) ([][]byte, error)
}

// errLater is a chunk a BatchSource deferred (a nil entry of FetchMany).
var errLater = errors.New("imaging: the chunk source says: ask again later")

// AssembleOptions configures Assemble. Zero values mean the defaults.
type AssembleOptions struct {
	// Index is the image to assemble. Required.
	Index *chunkstore.Index
	// Seed is the index of the image the target held before (the
	// version the machine ran), at the same Offset: a chunk that is not
	// in place is copied from where the seed has it, when the bytes
	// there still hash to it. Nil: only chunks in place are reused.
	Seed *chunkstore.Index
	// Source fetches the chunks found neither in place nor in the seed.
	// Required unless every chunk is found on the target.
	Source ChunkSource
	// Disk reads the target: the chunks in place and the seed's. Nil
	// means dst when it is an io.ReaderAt, else nothing is reused.
	Disk io.ReaderAt
	// Offset is where the image starts on the target; Limit the most
	// bytes it may take there (0: no limit).
	Offset, Limit int64
	// Hold is the length of the image's start that dst keeps in memory
	// (a whole-disk install's held head): chunks there are written to
	// dst even when they are already in place on the disk.
	Hold int64
	// Workers is how many chunks are checked, copied or fetched at
	// once. Default 32.
	Workers int
	// Batch is the most chunks asked for in one request of a
	// BatchSource (up to agentapi.MaxChunkBatch), with at most two such
	// requests at a time. Default 32; 1 fetches chunk by chunk.
	Batch int
	// Window bounds the bytes read ahead of the writes; with a seed the
	// writes trail the reads by half of it, so that a chunk that moved
	// by less than that is read before anything overwrites it. Default
	// 32 MiB (an installer with 1 GiB of RAM has room for it).
	Window int64
	// Retries is how many times a failed fetch of one chunk is retried,
	// RetryDelay the first wait, doubled each time up to 30 s. Defaults
	// 8 and 1 s.
	Retries    int
	RetryDelay time.Duration
	// Progress is called from the writing goroutine at most every
	// ProgressInterval (default 1 s) and once at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Logger receives retries. Default slog.Default().
	Logger *slog.Logger
	// OnDisk, if set, is called with the position in Index.Chunks of
	// each chunk that is on the target, verified: found in place, or
	// written (after the write that carried it returned). A chunk in
	// the held head (before Hold) is never reported: its bytes are not
	// on the disk until the install ends. This is what an agent may
	// serve to its peers (docs/DESIGN.md, "Peer distribution"). Called
	// from the writing goroutine once per chunk, not necessarily in
	// image order (a written chunk is named when its run is flushed, one
	// in place at once); it must not block. With Spread, the chunks of
	// the second pass are named from the fetching goroutines: OnDisk
	// must then be safe for concurrent use.
	OnDisk func(i int)
	// Spread fetches the chunks found neither on the target nor in the
	// seed after the in-order pass, in an order of their own, each
	// written at its place as it arrives: installing machines that fetch
	// in different orders can serve each other sooner (docs/DESIGN.md,
	// "Peer distribution"). The whole image's SHA-256 is then computed by
	// reading the image back from dst (or Disk, when dst cannot be read)
	// at the end. A repeated chunk is fetched once and written at each
	// of its places.
	Spread bool
	// Shuffle orders the chunks Spread fetches, given as their first
	// positions in Index.Chunks in image order; nil shuffles them at
	// random.
	Shuffle func(first []int)
}

// AssembleResult describes an assembled, verified image.
type AssembleResult struct {
	// Size is the image's size: the bytes now on the target.
	Size int64 `json:"size"`
	// InPlace is the bytes that were already in place, Copied those
	// copied from the seed elsewhere on the disk, Fetched the compressed
	// bytes received from the chunk store and FetchedRaw their size
	// uncompressed, Zeroed the all-zero chunks written.
	InPlace    int64 `json:"in_place"`
	Copied     int64 `json:"copied"`
	Fetched    int64 `json:"fetched"`
	FetchedRaw int64 `json:"fetched_raw"`
	Zeroed     int64 `json:"zeroed"`
	// Punched is the part of Zeroed made by fallocate, without writing
	// (zero chunks on a target that does not hold the image).
	Punched int64 `json:"punched"`
	// Written is Copied + FetchedRaw + Zeroed: what the target was
	// written.
	Written int64 `json:"written"`
	// Chunk counts, by where each came from.
	Chunks        int `json:"chunks"`
	ChunksInPlace int `json:"chunks_in_place"`
	ChunksCopied  int `json:"chunks_copied"`
	ChunksFetched int `json:"chunks_fetched"`
	ChunksZeroed  int `json:"chunks_zeroed"`
	FetchRetries  int `json:"fetch_retries"`
	// ChunksUnchecked were not looked for in place: they came after a
	// long run of chunks that were not (see Assemble).
	ChunksUnchecked int `json:"chunks_unchecked"`
	SeedMismatches  int `json:"seed_mismatches"`
	// SHA256 is the digest of the whole image as assembled.
	SHA256   string        `json:"sha256"`
	Duration time.Duration `json:"duration"`
}

// Reused is the bytes taken from the disk: in place or copied.
func (r *AssembleResult) Reused() int64 { return r.InPlace + r.Copied }

// After missRun chunks in a row not in place, Assemble looks for one
// chunk in probeEvery only.
const (
	missRun    = 64
	probeEvery = 16
)

// ErrChunk wraps the error of a chunk that could not be fetched or that
// did not verify; the message names the chunk and its place.
var ErrChunk = errors.New("imaging: chunk")

// Where a chunk's bytes came from.
const (
	fromDisk = iota + 1
	fromSeed
	fromStore
	fromZero
	fromHole // to fetch in the second pass (Spread)
)

// Assemble writes the image of opt.Index to dst at opt.Offset, taking
// each chunk, in this order, from the target itself when it is already in
// place (read and hashed), from the seed image elsewhere on the disk
// (read and hashed), or from opt.Source (decompressed and hashed). Every
// chunk is verified before it is written; chunks in place are not
// written. The whole image's SHA-256, computed over every byte as it ends
// on the target, in order, must equal the index's, or the error wraps
// ErrChecksum. dst is synced at the end when it has a Sync method.
//
// Workers resolve chunks in parallel, ahead of a single writer that
// writes them in order; a fetch that fails is retried. An install cut
// short resumes, on the next attempt, with the chunks already written
// found in place.
//
// After 64 chunks in a row that were not in place, as on a fresh disk,
// only every 16th is looked for, until one is found: a first install
// reads little of the disk, and a missed chunk is only fetched.
//
// A seed chunk is read before anything is written over it when it moved
// by less than half of the window; the writer trails the reads by that
// much. One that moved further may have been overwritten; it then fails
// its hash and is fetched instead.
func Assemble(ctx context.Context, dst io.WriterAt, opt AssembleOptions) (AssembleResult, error) {
	start := time.Now()
	opt = opt.withDefaults(dst)
	ix := opt.Index
	if ix == nil {
		return AssembleResult{}, errors.New("imaging: assemble: no index")
	}
	if opt.Limit > 0 && ix.Size > opt.Limit {
		return AssembleResult{}, fmt.Errorf("%w: %s, room for %s", ErrImageTooLarge, agentapi.HumanBytes(ix.Size), agentapi.HumanBytes(opt.Limit))
	}
	if opt.Spread && (&assembler{opt: opt}).readable(dst) == nil {
		return AssembleResult{}, errors.New("imaging: assemble: Spread needs a target it can read the image back from")
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(2*chunkstore.MaxChunk))
	if err != nil {
		return AssembleResult{}, err
	}
	defer dec.Close()
	a := &assembler{opt: opt, dst: dst, dec: dec, seed: seedOffsets(opt.Seed, ix), freed: make(chan struct{}, 1),
		p: progressMeter{fn: opt.Progress, every: opt.ProgressInterval, total: ix.Size, start: time.Now()}}
	if a.seed != nil {
		a.guard = opt.Window / 2
	}
	a.res.Chunks = len(ix.Chunks)
	a.res.Size = ix.Size
	a.shared = sharedChunks(ix)

	g, gctx := errgroup.WithContext(ctx)
	if src, ok := opt.Source.(BatchSource); ok && opt.Batch > 1 {
		// For the whole assembly, not the first pass's group: Spread's
		// second pass batches too (a batcher gone would leave its
		// fetches waiting).
		bctx, cancel := context.WithCancel(ctx)
		defer cancel()
		a.batch = &batcher{src: src, max: opt.Batch, reqs: make(chan *batchReq), slots: make(chan struct{}, 2)}
		go a.batch.run(bctx)
	}
	work := make(chan *asmJob, opt.Workers)
	order := make(chan *asmJob, int(opt.Window/chunkstore.MinChunk)+2)
	for range opt.Workers {
		g.Go(func() error {
			for j := range work {
				a.resolve(gctx, j)
				close(j.done)
			}
			return nil
		})
	}
	// The dispatcher: every chunk in order, at most the window ahead.
	g.Go(func() error {
		defer close(work)
		defer close(order)
		var ahead int64
		for i := range ix.Chunks {
			j := &asmJob{i: i, c: &ix.Chunks[i], done: make(chan struct{})}
			// After a long run of chunks not in place (a fresh disk, the
			// rest of a cut install), only one in probeEvery is looked
			// for; a hit resumes the full check. A zero chunk not looked
			// for is zeroed without writing, when the target allows.
			j.skipCheck = a.misses.Load() >= missRun && i%probeEvery != 0
			for {
				// ahead is the bytes dispatched and not yet hashed.
				if ahead-a.released.Load()+j.c.Size <= opt.Window {
					break
				}
				select {
				case <-a.freed:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			ahead += j.c.Size
			select {
			case work <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			// order has room for the window's worth of chunks; a writer
			// that stopped still must not block this.
			select {
			case order <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	toHash := make(chan *asmJob, opt.Workers)
	g.Go(func() error { return a.write(gctx, dst, order, toHash) })
	whole := sha256.New()
	g.Go(func() error {
		for j := range toHash {
			if !opt.Spread {
				whole.Write(j.buf)
			}
			putChunkBuf(j.buf)
			j.buf = nil
			a.released.Add(j.c.Size)
			select {
			case a.freed <- struct{}{}:
			default:
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = ctx.Err()
		}
		return a.res, err
	}
	if opt.Spread {
		if err := a.fetchHoles(ctx, dst); err != nil {
			return a.res, err
		}
		sum, err := a.readBack(dst)
		if err != nil {
			return a.res, err
		}
		a.res.SHA256 = sum
	} else {
		a.res.SHA256 = hex.EncodeToString(whole.Sum(nil))
	}
	a.mu.Lock()
	a.res.Written = a.res.Copied + a.res.FetchedRaw + a.res.Zeroed
	fetched, reused := a.res.Fetched, a.res.InPlace+a.res.Copied
	a.mu.Unlock()
	a.p.updateChunked(a.done, fetched, reused, true)
	if want := ix.Digest(); a.res.SHA256 != want {
		return a.res, fmt.Errorf("%w: the assembled image has SHA-256 %s, its index says %s", ErrChecksum, a.res.SHA256, want)
	}
	if sy, ok := dst.(interface{ Sync() error }); ok {
		if err := sy.Sync(); err != nil {
			return a.res, fmt.Errorf("imaging: sync image: %w", err)
		}
	}
	a.res.Duration = time.Since(start)
	return a.res, nil
}

func (o AssembleOptions) withDefaults(dst io.WriterAt) AssembleOptions {
	if o.Disk == nil {
		o.Disk, _ = dst.(io.ReaderAt)
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.Batch <= 0 {
		o.Batch = 32
	}
	o.Batch = min(o.Batch, agentapi.MaxChunkBatch)
	if o.Window <= 0 {
		o.Window = 32 << 20
	}
	o.Window = max(o.Window, 4*chunkstore.MaxChunk)
	if o.Retries <= 0 {
		o.Retries = 8
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// seedOffsets maps the seed's chunks that the new image needs to their
// offsets in the seed image: the last occurrence, which an in-order
// assembly reaches last.
func seedOffsets(seed, ix *chunkstore.Index) map[chunkstore.ChunkID]int64 {
	if seed == nil {
		return nil
	}
	m := make(map[chunkstore.ChunkID]int64, len(seed.Chunks))
	for _, c := range seed.Chunks {
		if !c.ID.IsZero() {
			m[c.ID] = c.Offset
		}
	}
	return m
}

// assembler is one Assemble's shared state.
type assembler struct {
	opt   AssembleOptions
	dst   io.WriterAt
	dec   *zstd.Decoder
	seed  map[chunkstore.ChunkID]int64
	guard int64 // how far past a chunk the reads must be done before it is written

	released atomic.Int64  // bytes hashed: the dispatcher's window moves on
	misses   atomic.Int64  // non-zero chunks not in place since the last that was
	freed    chan struct{} // a token after each release

	// shared holds, for the chunks the image has more than once, the
	// stored bytes of the first fetch, until every occurrence is
	// resolved: one fetch per distinct chunk.
	shared map[chunkstore.ChunkID]*sharedChunk
	// batch gathers first fetches into requests of many chunks; nil
	// when the source fetches one at a time.
	batch *batcher

	mu   sync.Mutex
	res  AssembleResult
	p    progressMeter
	done int64   // image bytes on the target
	hole []int32 // with Spread, the chunks left for the second pass
	// holes is set during the second pass: a chunk the source defers
	// (errLater) is asked for again after the others.
	holes bool
}

// sharedChunk is one fetch of a chunk several places of the image need.
type sharedChunk struct {
	left int           // occurrences not yet resolved
	done chan struct{} // closed when z or err is set
	z    []byte
	err  error
}

// sharedChunks counts the non-zero chunks that occur more than once.
func sharedChunks(ix *chunkstore.Index) map[chunkstore.ChunkID]*sharedChunk {
	n := make(map[chunkstore.ChunkID]int, len(ix.Chunks))
	for _, c := range ix.Chunks {
		if !c.ID.IsZero() {
			n[c.ID]++
		}
	}
	m := make(map[chunkstore.ChunkID]*sharedChunk)
	for id, k := range n {
		if k > 1 {
			m[id] = &sharedChunk{left: k}
		}
	}
	return m
}

// asmJob is one chunk on its way to the target.
type asmJob struct {
	i         int // position in the index
	c         *chunkstore.IndexChunk
	skipCheck bool   // not looked for in place
	zeroed    bool   // zeroed on the target by resolve: not to be written
	buf       []byte // the chunk's bytes, once resolved
	from      int
	err       error
	done      chan struct{} // closed when resolved
}

// resolve finds the chunk's bytes: on the target, in the seed, or from
// the store.
func (a *assembler) resolve(ctx context.Context, j *asmJob) {
	c := j.c
	j.buf = getChunkBuf(int(c.Size))
	if ctx.Err() != nil {
		j.err = ctx.Err()
		return
	}
	// A chunk the seed has elsewhere most likely is not in place (the
	// seed's own bytes are): the seed is read first, saving a hash per
	// moved chunk. Either way the bytes are the chunk's, verified.
	if c.ID.IsZero() && j.skipCheck && a.seed == nil && c.Offset >= a.opt.Hold && a.zeroInPlace(c) {
		// Without a seed nothing reads this place later; zeroed, it is
		// verified like any region of zeros, by the image's digest.
		clear(j.buf)
		j.from, j.zeroed = fromZero, true
		return
	}
	seedOff, inSeed := a.seed[c.ID]
	moved := inSeed && seedOff != c.Offset
	if moved && a.fromSeed(j, seedOff) {
		return
	}
	if a.inPlace(j) {
		return
	}
	if c.ID.IsZero() {
		clear(j.buf)
		j.from = fromZero
		return
	}
	if inSeed && !moved && a.fromSeed(j, seedOff) {
		return
	}
	if a.opt.Spread {
		// Fetched in the second pass.
		putChunkBuf(j.buf)
		j.buf = nil
		j.from = fromHole
		return
	}
	j.err = a.fetch(ctx, j)
	j.from = fromStore
}

// zeroInPlace zeroes the chunk's place without writing its bytes: its
// 4 KiB-aligned middle with fallocate (a block device takes only whole
// logical blocks), the few bytes at either end with a write. It reports
// false when the target cannot, and the chunk is then written.
func (a *assembler) zeroInPlace(c *chunkstore.IndexChunk) bool {
	const align = 4096
	start := a.opt.Offset + c.Offset
	end := start + c.Size
	lo, hi := (start+align-1)/align*align, end/align*align
	if hi <= lo || !punchZeros(a.opt.Disk, lo, hi-lo) {
		return false
	}
	var zeros [align]byte
	if _, err := a.dst.WriteAt(zeros[:lo-start], start); err != nil {
		return false
	}
	if _, err := a.dst.WriteAt(zeros[:end-hi], hi); err != nil {
		return false
	}
	return true
}

// inPlace reports whether the target already holds the chunk, reading
// it into j.buf.
func (a *assembler) inPlace(j *asmJob) bool {
	c := j.c
	if j.skipCheck && !c.ID.IsZero() {
		a.mu.Lock()
		a.res.ChunksUnchecked++
		a.mu.Unlock()
		return false
	}
	if !a.readDisk(j.buf, c.Offset) {
		return false
	}
	switch {
	case c.ID.IsZero():
		if chunkstore.IsZero(j.buf) {
			j.from = fromDisk
			return true
		}
		return false
	case !chunkstore.IsZero(j.buf) && chunkstore.ChunkID(sha256.Sum256(j.buf)) == c.ID:
		j.from = fromDisk
		a.misses.Store(0)
		return true
	}
	a.misses.Add(1)
	return false
}

// fromSeed reports whether the seed's place of the chunk, at image
// offset off, still holds it, reading it into j.buf.
func (a *assembler) fromSeed(j *asmJob, off int64) bool {
	if a.readDisk(j.buf, off) && chunkstore.ChunkID(sha256.Sum256(j.buf)) == j.c.ID {
		j.from = fromSeed
		return true
	}
	a.mu.Lock()
	a.res.SeedMismatches++
	a.mu.Unlock()
	return false
}

// readDisk reads len(buf) bytes of the target at image offset off; bytes
// past the target's end read as zeros. It reports whether it could read.
func (a *assembler) readDisk(buf []byte, off int64) bool {
	if a.opt.Disk == nil {
		return false
	}
	n, err := a.opt.Disk.ReadAt(buf, a.opt.Offset+off)
	if err != nil && !(errors.Is(err, io.EOF) && n < len(buf)) {
		return false
	}
	clear(buf[n:])
	return true
}

// fetch gets the chunk from the store, retrying transient failures and a
// chunk that arrived damaged, and verifies it into j.buf.
func (a *assembler) fetch(ctx context.Context, j *asmJob) error {
	c := j.c
	if a.opt.Source == nil {
		return fmt.Errorf("%w %s at byte %d of the image: not on the disk, and no chunk source", ErrChunk, c.ID, c.Offset)
	}
	delay := a.opt.RetryDelay
	var last error
	for try := 0; ; try++ {
		if try > 0 {
			a.mu.Lock()
			a.res.FetchRetries++
			a.mu.Unlock()
			a.opt.Logger.Warn("chunk fetch failed; retrying", "chunk", c.ID.String(), "offset", c.Offset, "try", try, "err", last)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			delay = min(2*delay, 30*time.Second)
		}
		z, fresh, err := a.fetchOnce(ctx, c, try)
		if errors.Is(err, errLater) {
			if a.holes {
				return err // fetchHoles asks again after the others
			}
			z, err = a.opt.Source.Fetch(ctx, c.ID, c.Stored)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last = err
			if isPermanent(err) || try >= a.opt.Retries {
				return fmt.Errorf("%w %s at byte %d of the image: %v", ErrChunk, c.ID, c.Offset, err)
			}
			continue
		}
		if fresh {
			a.mu.Lock()
			a.res.Fetched += int64(len(z))
			a.mu.Unlock()
		}
		out, err := a.dec.DecodeAll(z, j.buf[:0])
		switch {
		case err != nil:
			last = fmt.Errorf("damaged: %v", err)
		case int64(len(out)) != c.Size:
			last = fmt.Errorf("damaged: %d bytes, the index says %d", len(out), c.Size)
		case chunkstore.ChunkID(sha256.Sum256(out)) != c.ID:
			last = fmt.Errorf("damaged: its bytes hash to %x", sha256.Sum256(out))
		default:
			return nil
		}
		// A chunk damaged in transit comes right the second time; one
		// damaged in the store does not.
		if try >= 1 {
			return fmt.Errorf("%w %s at byte %d of the image: %w: %v", ErrChunk, c.ID, c.Offset, ErrChecksum, last)
		}
	}
}

// fetchOnce fetches the chunk's stored bytes, once for all its
// occurrences when the image has it more than once: the first try of each
// occurrence shares the first fetch (fresh is false for the others); a
// retry fetches anew. The shared bytes are dropped once every occurrence
// that fetched has them.
func (a *assembler) fetchOnce(ctx context.Context, c *chunkstore.IndexChunk, try int) (z []byte, fresh bool, err error) {
	sh := a.shared[c.ID]
	if sh == nil || try > 0 {
		if try == 0 {
			z, err = a.first(ctx, c)
		} else {
			z, err = a.opt.Source.Fetch(ctx, c.ID, c.Stored)
		}
		return z, true, err
	}
	a.mu.Lock()
	first := sh.done == nil
	if first {
		sh.done = make(chan struct{})
	}
	a.mu.Unlock()
	if first {
		sh.z, sh.err = a.first(ctx, c)
		close(sh.done)
	} else {
		select {
		case <-sh.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	a.mu.Lock()
	z, err = sh.z, sh.err
	if sh.left--; sh.left == 0 {
		sh.z = nil
	}
	a.mu.Unlock()
	return z, first, err
}

// first is a chunk's first fetch: in a batch when the source takes
// them, else alone. A failed batch is retried chunk by chunk at once.
func (a *assembler) first(ctx context.Context, c *chunkstore.IndexChunk) ([]byte, error) {
	if a.batch != nil && c.Stored > 0 && !a.batch.off.Load() {
		z, err := a.batch.fetch(ctx, c)
		if err == nil || ctx.Err() != nil || errors.Is(err, errLater) {
			return z, err
		}
		if isPermanent(err) && a.batch.off.CompareAndSwap(false, true) {
			// An appliance without batches (or a chunk it lacks): one
			// by one from now on.
			a.opt.Logger.Info("the chunk store refused a batch; fetching chunks one by one", "err", err)
		}
	}
	return a.opt.Source.Fetch(ctx, c.ID, c.Stored)
}

// batcher gathers the chunks that workers want fetched into requests of
// up to max chunks, at most cap(slots) at a time: those asked for within
// a millisecond of the first, and while every slot is busy the workers'
// requests wait, so the busier the source, the larger the batches.
type batcher struct {
	off   atomic.Bool // a batch was refused
	src   BatchSource
	max   int
	reqs  chan *batchReq
	slots chan struct{}
}

type batchReq struct {
	c    *chunkstore.IndexChunk
	z    []byte
	err  error
	done chan struct{}
}

func (b *batcher) fetch(ctx context.Context, c *chunkstore.IndexChunk) ([]byte, error) {
	r := &batchReq{c: c, done: make(chan struct{})}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-r.done:
		return r.z, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *batcher) run(ctx context.Context) {
	for {
		select {
		case b.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		var batch []*batchReq
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		case <-ctx.Done():
			return
		}
		// The others that come within a millisecond join it.
		linger := time.NewTimer(time.Millisecond)
	gather:
		for len(batch) < b.max {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			case <-linger.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		linger.Stop()
		go func() {
			defer func() { <-b.slots }()
			chunks := make([]chunkstore.IndexChunk, len(batch))
			for i, r := range batch {
				chunks[i] = *r.c
			}
			zs, err := b.src.FetchMany(ctx, chunks)
			for i, r := range batch {
				switch {
				case err != nil:
					r.err = err
				case zs[i] == nil:
					r.err = errLater
				default:
					r.z = zs[i]
				}
				close(r.done)
			}
		}()
	}
}

// write writes the resolved chunks in order, each only once the reads
// that must precede it are done, and hands them on to the hash.
func (a *assembler) write(ctx context.Context, dst io.WriterAt, order <-chan *asmJob, toHash chan<- *asmJob) error {
	defer close(toHash)
	var queue []*asmJob // received from order, not yet written
	more := true
	// A chunk that failed fails the assembly only when the writer
	// reaches it: the chunks before it are written first, and the next
	// attempt finds them in place.
	wait := func(j *asmJob) error {
		select {
		case <-j.done:
			return j.err
		default:
		}
		select {
		case <-j.done:
			return j.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w := &runWriter{dst: dst, buf: alignedBuffer(writeRun)[:0], onDisk: a.opt.OnDisk}
	for {
		if len(queue) == 0 {
			j, ok := <-order
			if !ok {
				break
			}
			queue = append(queue, j)
		}
		j := queue[0]
		// With a seed, the chunks up to guard bytes past this one must
		// have been read (their seed may lie under this chunk).
		for more && a.guard > 0 {
			last := queue[len(queue)-1]
			if last.c.Offset >= j.c.Offset+j.c.Size+a.guard {
				break
			}
			next, ok := <-order
			if !ok {
				more = false
				break
			}
			queue = append(queue, next)
		}
		if err := wait(j); err != nil {
			// What is gathered is verified: on the disk, the next
			// attempt finds it in place.
			if ferr := w.flush(); ferr != nil {
				a.opt.Logger.Warn("could not write the chunks before the failed one", "err", ferr)
			}
			return err
		}
		for _, k := range queue[1:] {
			if k.c.Offset >= j.c.Offset+j.c.Size+a.guard {
				break
			}
			// Only its reads matter here: its error is for its turn.
			select {
			case <-k.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		queue = queue[1:]
		c := j.c
		if j.from == fromHole {
			a.hole = append(a.hole, int32(j.i))
			select {
			case toHash <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		// Only a chunk wholly past the held head reaches the disk now.
		onDisk := -1
		if c.Offset >= a.opt.Hold {
			onDisk = j.i
		}
		if (j.from != fromDisk && !j.zeroed) || c.Offset < a.opt.Hold {
			if err := w.add(j.buf, a.opt.Offset+c.Offset, onDisk); err != nil {
				return err
			}
		} else if a.opt.OnDisk != nil {
			a.opt.OnDisk(j.i)
		}
		a.mu.Lock()
		r := &a.res
		switch j.from {
		case fromDisk:
			r.InPlace += c.Size
			r.ChunksInPlace++
		case fromSeed:
			r.Copied += c.Size
			r.ChunksCopied++
		case fromStore:
			r.FetchedRaw += c.Size
			r.ChunksFetched++
		case fromZero:
			r.Zeroed += c.Size
			r.ChunksZeroed++
			if j.zeroed {
				r.Punched += c.Size
			}
		}
		fetched, reused := r.Fetched, r.InPlace+r.Copied
		a.mu.Unlock()
		a.mu.Lock()
		a.done += c.Size
		done := a.done
		a.mu.Unlock()
		a.p.updateChunked(done, fetched, reused, false)
		select {
		case toHash <- j:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return w.flush()
}

// writeRun is the most bytes runWriter gathers into one write.
const writeRun = 8 << 20

// runWriter gathers chunks that follow each other on the target into
// writes of up to writeRun bytes: one pwrite and one writeback start per
// run rather than per 64 KiB chunk.
type runWriter struct {
	dst io.WriterAt
	buf []byte
	at  int64 // where buf goes
	// onDisk is told the index positions of buf's chunks once they are
	// written (pending); nil when nobody asks.
	onDisk  func(i int)
	pending []int
}

// add gathers chunk b, going to at; i is its position in the index, or
// -1 when it must not be reported on the disk.
func (w *runWriter) add(b []byte, at int64, i int) error {
	if len(w.buf) > 0 && (w.at+int64(len(w.buf)) != at || len(w.buf)+len(b) > cap(w.buf)) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.buf) == 0 {
		w.at = at
	}
	if len(b) > cap(w.buf) {
		if err := w.write(b, at); err != nil {
			return err
		}
		if w.onDisk != nil && i >= 0 {
			w.onDisk(i)
		}
		return nil
	}
	w.buf = append(w.buf, b...)
	if w.onDisk != nil && i >= 0 {
		w.pending = append(w.pending, i)
	}
	return nil
}

func (w *runWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.write(w.buf, w.at)
	w.buf = w.buf[:0]
	if err == nil {
		for _, i := range w.pending {
			w.onDisk(i)
		}
	}
	w.pending = w.pending[:0]
	return err
}

func (w *runWriter) write(b []byte, at int64) error {
	if _, err := w.dst.WriteAt(b, at); err != nil {
		return fmt.Errorf("imaging: write image at byte %d: %w", at, err)
	}
	startWriteback(w.dst, at, int64(len(b)))
	return nil
}

// chunkBufs recycle chunk buffers in four size classes, 32 to 256 KiB,
// so that the window's worth of chunks in flight takes at most twice its
// size in memory.
var chunkBufs [4]sync.Pool

func bufClass(n int) int {
	c := 0
	for size := 32 << 10; size < n && c < len(chunkBufs)-1; size <<= 1 {
		c++
	}
	return c
}

func getChunkBuf(n int) []byte {
	if n > chunkstore.MaxChunk {
		return make([]byte, n)
	}
	c := bufClass(n)
	if b, ok := chunkBufs[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, (32<<10)<<c)
}

func putChunkBuf(b []byte) {
	c := bufClass(cap(b))
	if cap(b) == (32<<10)<<c {
		chunkBufs[c].Put(&b)
	}
}
