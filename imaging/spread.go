package imaging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// The second pass of a Spread assembly (AssembleOptions.Spread): the
// first, in-order pass has done every read of the target (chunks in
// place, the seed's), so the chunks it left can be written at their
// places in any order; nothing still to be read lies under them.

// fetchHoles fetches the chunks the first pass left, each distinct one
// once in the order of Shuffle, and writes it at each of its places.
func (a *assembler) fetchHoles(ctx context.Context, dst io.WriterAt) error {
	if len(a.hole) == 0 {
		return nil
	}
	ix := a.opt.Index
	places := make(map[chunkstore.ChunkID][]int32, len(a.hole))
	var first []int
	for _, i := range a.hole {
		id := ix.Chunks[i].ID
		if _, ok := places[id]; !ok {
			first = append(first, int(i))
		}
		places[id] = append(places[id], i)
	}
	if a.opt.Shuffle != nil {
		a.opt.Shuffle(first)
	} else {
		rand.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	}
	// Each distinct chunk is fetched once here already.
	a.shared = nil
	a.holes = true
	g, gctx := errgroup.WithContext(ctx)
	// work holds every chunk still to fetch, so that a deferred one
	// (errLater: a peer is receiving it) goes back at its end without
	// blocking; it is closed when the last one is written.
	work := make(chan int, len(first))
	for _, i := range first {
		work <- i
	}
	var left atomic.Int64
	left.Store(int64(len(first)))
	for range a.opt.Workers {
		g.Go(func() error {
			for {
				var i int
				select {
				case j, ok := <-work:
					if !ok {
						return nil
					}
					i = j
				case <-gctx.Done():
					return gctx.Err()
				}
				err := a.fetchHole(gctx, dst, i, places[ix.Chunks[i].ID])
				if errors.Is(err, errLater) {
					// Not a busy loop when only deferred chunks are left.
					select {
					case <-time.After(laterDelay):
					case <-gctx.Done():
						return gctx.Err()
					}
					work <- i
					continue
				}
				if err != nil {
					return err
				}
				if left.Add(-1) == 0 {
					close(work)
				}
			}
		})
	}
	err := g.Wait()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = ctx.Err()
	}
	return err
}

// laterDelay is how long a worker waits before it asks again for a chunk
// its source deferred.
const laterDelay = 100 * time.Millisecond

// fetchHole fetches chunk first, verified, and writes it at the places
// at (positions in the index).
func (a *assembler) fetchHole(ctx context.Context, dst io.WriterAt, first int, at []int32) error {
	c := &a.opt.Index.Chunks[first]
	j := &asmJob{i: first, c: c, buf: getChunkBuf(int(c.Size))}
	defer putChunkBuf(j.buf)
	if err := a.fetch(ctx, j); err != nil {
		return err
	}
	for _, i := range at {
		c := a.opt.Index.Chunks[i]
		off := a.opt.Offset + c.Offset
		if _, err := dst.WriteAt(j.buf, off); err != nil {
			return fmt.Errorf("imaging: write image at byte %d: %w", off, err)
		}
		startWriteback(dst, off, c.Size)
		if a.opt.OnDisk != nil && c.Offset >= a.opt.Hold {
			a.opt.OnDisk(int(i))
		}
		a.mu.Lock()
		r := &a.res
		r.FetchedRaw += c.Size
		r.ChunksFetched++
		a.done += c.Size
		done, fetched, reused := a.done, r.Fetched, r.InPlace+r.Copied
		// The meter is not safe for concurrent use.
		a.p.updateChunked(done, fetched, reused, false)
		a.mu.Unlock()
	}
	return nil
}

// readable is what a Spread assembly reads the image back from: dst,
// or else the Disk.
func (a *assembler) readable(dst io.WriterAt) io.ReaderAt {
	if r, ok := dst.(io.ReaderAt); ok {
		return r
	}
	return a.opt.Disk
}

// readBack returns the hex SHA-256 of the image as it is on the target.
func (a *assembler) readBack(dst io.WriterAt) (string, error) {
	r := a.readable(dst)
	size := a.opt.Index.Size
	h := sha256.New()
	buf := make([]byte, writeRun)
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		m, err := r.ReadAt(buf[:n], a.opt.Offset+off)
		if int64(m) < n {
			return "", fmt.Errorf("imaging: read the image back at byte %d: %w", a.opt.Offset+off, err)
		}
		h.Write(buf[:n])
		off += n
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
