package imaging

import (
	"context"
	"fmt"
	"io"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// assemble writes the plan's chunked image to dst at off: the index
// first, checked against the plan, then Assemble with the seed's index
// when the plan names one. The target is read through j.f, the buffered
// descriptor, and written through dst (for a whole-disk image, the held
// head, whose bytes Assemble always writes).
func (j *job) assemble(ctx context.Context, dst io.WriterAt, off, limit int64) (*StreamResult, error) {
	img := j.plan.Image
	store := j.in.chunkStore(*img)
	j.log.Info("assembling chunked image", "index", img.URL, "offset", off)
	ix, err := store.Index(ctx, img.URL)
	if err != nil {
		return nil, err
	}
	if ix.Digest() != img.SHA256 {
		return nil, fmt.Errorf("%w: the index %s is of an image with SHA-256 %s, the plan wants %s", ErrChecksum, img.URL, ix.Digest(), img.SHA256)
	}
	if img.RawSize > 0 && ix.Size != img.RawSize {
		return nil, fmt.Errorf("%w: the index %s is of a %d-byte image, the plan says %d", ErrInvalidPlan, img.URL, ix.Size, img.RawSize)
	}
	var seed *chunkstore.Index
	if s := img.Seed; s != nil {
		// Without the seed's index, chunks in place are still found:
		// only the moved ones are fetched.
		if seed, err = store.Index(ctx, s.URL); err != nil {
			j.log.Warn("seed index unavailable: reusing only the chunks in place", "version", s.Version, "err", err)
		}
	}
	opt := AssembleOptions{
		Index: ix, Seed: seed, Source: store, Disk: j.f, Offset: off, Limit: limit,
		Retries: j.in.Stream.Retries, RetryDelay: j.in.Stream.RetryDelay,
		Progress: j.in.Progress, ProgressInterval: j.in.Stream.ProgressInterval, Logger: j.log,
	}
	if h, ok := dst.(*heldHead); ok {
		opt.Hold = int64(len(h.buf))
	}
	if img.Peers != nil && j.in.Share != nil {
		opt.OnDisk, opt.Spread = j.in.Share(ix, off)
	}
	res, err := Assemble(ctx, dst, opt)
	if err != nil {
		return nil, err
	}
	j.chunked = &res
	seedName := ""
	if img.Seed != nil {
		seedName = img.Seed.Version
	}
	j.log.Info("image written", "bytes", res.Size, "received", res.Fetched, "format", agentapi.FormatChunked,
		"in_place", res.InPlace, "copied", res.Copied, "fetched_raw", res.FetchedRaw, "zeroed", res.Zeroed, "punched", res.Punched,
		"chunks", res.Chunks, "chunks_fetched", res.ChunksFetched, "seed", seedName, "seed_mismatches", res.SeedMismatches,
		"retries", res.FetchRetries, "seconds", res.Duration.Seconds())
	return &StreamResult{Format: agentapi.FormatChunked, Written: res.Size, Received: res.Fetched, SHA256: res.SHA256,
		Resumes: res.FetchRetries, Duration: res.Duration}, nil
}

func (in *Installer) chunkStore(img agentapi.Image) ChunkStore {
	if in.Chunks != nil {
		return in.Chunks(img)
	}
	return &HTTPChunks{Base: img.Chunks}
}
