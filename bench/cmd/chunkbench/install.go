package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// importImage cuts an image into the chunk store and writes its index:
// what `rackboot image add` does for a chunked image.
func importImage(ctx context.Context, fs *flag.FlagSet, args []string, st *step) error {
	store := fs.String("store", "", "the chunk store `folder`")
	index := fs.String("index", "", "write the index to this `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *store == "" || *index == "" || fs.NArg() != 1 {
		return fmt.Errorf("import: want -store DIR -index FILE IMAGE")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := st.startProfile(); err != nil {
		return err
	}
	start := time.Now()
	res, err := chunkstore.Import(ctx, f, *store, chunkstore.ImportOptions{})
	if err != nil {
		return err
	}
	if err := chunkstore.WriteIndexFile(*index, res.Index); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	return st.write(map[string]float64{
		"secs": secs, "size": float64(res.Index.Size), "chunks": float64(res.Chunks),
		"new_chunks": float64(res.NewChunks), "zero_chunks": float64(res.ZeroChunks),
		"new_stored": float64(res.NewStored), "stored": float64(res.Index.StoredSize()),
	})
}

// assemble writes an image from its chunks onto a target file as the
// agent does: the index (and the seed's) over HTTP, then
// imaging.Assemble with an HTTPChunks source, ending with fsync. Without
// -fresh the target must exist (a copy of the previous version); with it,
// the target is created empty, as large as the image (sparse).
func assemble(ctx context.Context, fs *flag.FlagSet, args []string, st *step) error {
	index := fs.String("index", "", "`URL` of the image's index")
	seed := fs.String("seed", "", "`URL` of the index of the image the target holds (none: only chunks in place are reused)")
	store := fs.String("store", "", "`URL` of the chunk store")
	target := fs.String("target", "", "the target `file`")
	fresh := fs.Bool("fresh", false, "create the target empty (sparse, the image's size) instead of writing over it")
	noRead := fs.Bool("no-read", false, "do not read the target (no chunk in place, no seed): what a fresh install costs without Assemble's in-place check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *index == "" || *store == "" || *target == "" {
		return fmt.Errorf("assemble: want -index URL -store URL -target FILE")
	}
	if err := st.startProfile(); err != nil {
		return err
	}
	start := time.Now()
	src := &imaging.HTTPChunks{Base: *store}
	ix, err := src.Index(ctx, *index)
	if err != nil {
		return err
	}
	var seedIx *chunkstore.Index
	if *seed != "" {
		if seedIx, err = src.Index(ctx, *seed); err != nil {
			return err
		}
	}
	flags := os.O_RDWR
	if *fresh {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*target, flags, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if *fresh {
		if err := f.Truncate(ix.Size); err != nil {
			return err
		}
	}
	var dst io.WriterAt = f
	if *noRead {
		// Not an io.ReaderAt: Assemble then reads nothing from the target.
		dst = writeOnly{f}
	}
	res, err := imaging.Assemble(ctx, dst, imaging.AssembleOptions{Index: ix, Seed: seedIx, Source: src})
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return st.write(map[string]float64{
		"secs": time.Since(start).Seconds(), "assemble_secs": res.Duration.Seconds(), "size": float64(res.Size),
		"fetched": float64(res.Fetched), "fetched_raw": float64(res.FetchedRaw), "in_place": float64(res.InPlace),
		"copied": float64(res.Copied), "zeroed": float64(res.Zeroed), "written": float64(res.Written),
		"chunks": float64(res.Chunks), "chunks_fetched": float64(res.ChunksFetched), "chunks_copied": float64(res.ChunksCopied),
		"chunks_in_place": float64(res.ChunksInPlace), "seed_mismatches": float64(res.SeedMismatches), "retries": float64(res.FetchRetries),
	})
}

// writeOnly hides the file's ReadAt from Assemble; Sync and Fd remain, so
// it still syncs at the end and starts writeback per chunk.
type writeOnly struct{ f *os.File }

func (w writeOnly) WriteAt(p []byte, off int64) (int, error) { return w.f.WriteAt(p, off) }
func (w writeOnly) Sync() error                              { return w.f.Sync() }
func (w writeOnly) Fd() uintptr                              { return w.f.Fd() }

// stream writes a compressed image file fetched over HTTP onto a fresh
// target with imaging.Stream: today's path, and with -direct the
// installer's (aligned writes through O_DIRECT).
func stream(ctx context.Context, fs *flag.FlagSet, args []string, st *step) error {
	url := fs.String("url", "", "`URL` of the image file")
	sha := fs.String("sha256", "", "hex SHA-256 of the image file")
	target := fs.String("target", "", "the target `file`, created or truncated")
	direct := fs.Bool("direct", false, "write aligned blocks with O_DIRECT, as the installer does")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *sha == "" || *target == "" {
		return fmt.Errorf("stream: want -url URL -sha256 HEX -target FILE")
	}
	if err := st.startProfile(); err != nil {
		return err
	}
	start := time.Now()
	f, err := os.OpenFile(*target, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	dst := &directFile{File: f}
	if *direct {
		if dst.direct, err = os.OpenFile(*target, os.O_WRONLY|unix.O_DIRECT, 0); err != nil {
			return fmt.Errorf("stream: O_DIRECT: %w", err)
		}
		defer dst.direct.Close()
	}
	res, err := imaging.Stream(ctx, (&imaging.HTTPSource{URL: *url}).Open, dst, imaging.StreamOptions{Format: agentapi.FormatAuto, SHA256: *sha})
	if err != nil {
		return err
	}
	return st.write(map[string]float64{
		"secs": time.Since(start).Seconds(), "stream_secs": res.Duration.Seconds(),
		"size": float64(res.Written), "fetched": float64(res.Received),
	})
}

// directFile is the installer's target as imaging's diskFile makes it
// (unexported there): aligned writes through an O_DIRECT descriptor, the
// rest through the page cache; fsync covers both.
type directFile struct {
	*os.File
	direct *os.File
}

func (d *directFile) WriteAt(p []byte, off int64) (int, error) {
	const align = 4096
	if d.direct != nil && len(p) > 0 && len(p)%align == 0 && off%align == 0 && uintptr(unsafe.Pointer(&p[0]))%align == 0 {
		return d.direct.WriteAt(p, off)
	}
	return d.File.WriteAt(p, off)
}
