package chunkstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	fastcdc "github.com/jotfs/fastcdc-go"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/rackboot/rackboot/agentapi"
)

// ImportOptions configures Import.
type ImportOptions struct {
	// Format is the image file's compression: agentapi.FormatAuto
	// detects gzip, xz and zstd from the magic bytes, raw otherwise.
	Format string
	// Workers hash and compress chunks in parallel; default GOMAXPROCS.
	Workers int
	// Logger receives a line when the import ends. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// ImportResult describes an import.
type ImportResult struct {
	// Index is the image's index; Import does not write it anywhere.
	Index *Index
	// Chunks counts the image's chunks, NewChunks the distinct ones the
	// store did not have, ZeroChunks the all-zero ones (never stored).
	Chunks, NewChunks, ZeroChunks int
	// NewStored is the compressed size of the new chunks, NewRaw their
	// uncompressed size, ZeroBytes the size of the zero chunks.
	NewStored, NewRaw, ZeroBytes int64
}

// Import cuts the image read from r into content-defined chunks (FastCDC,
// MinChunk/AvgChunk/MaxChunk), stores each chunk the store directory does
// not have yet, zstd-compressed, at ChunkPath, and returns the image's
// index. All-zero chunks are not stored. Chunks are written to a
// temporary file and renamed, and the store's file system is synced
// before Import returns: an index written afterwards never names a chunk
// that a crash could lose. The chunking depends only on the image's
// bytes: importing an image twice gives the same index and stores
// nothing the second time.
func Import(ctx context.Context, r io.Reader, store string, opt ImportOptions) (*ImportResult, error) {
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, fmt.Errorf("chunkstore: chunk store: %w", err)
	}
	source := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(r, source), 1<<20)
	head, err := br.Peek(agentapi.MagicLen)
	if err == io.EOF {
		err = nil // a file shorter than the magic is raw
	}
	if err != nil {
		return nil, fmt.Errorf("chunkstore: read image: %w", err)
	}
	format := opt.Format
	if format == agentapi.FormatAuto {
		format = agentapi.SniffFormat(head)
	}
	dec, err := agentapi.NewDecompressor(format, br)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	whole := sha256.New()
	chunker, err := fastcdc.NewChunker(io.TeeReader(dec, whole), fastcdc.Options{
		MinSize: MinChunk, AverageSize: AvgChunk, MaxSize: MaxChunk, Normalization: Normalization, BufSize: 4 * MaxChunk,
	})
	if err != nil {
		return nil, fmt.Errorf("chunkstore: chunker: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false),
		zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return nil, err
	}
	defer enc.Close()

	imp := &importer{store: store, enc: enc, seen: make(map[ChunkID]*storedChunk)}
	res := &ImportResult{Index: &Index{MinChunk: MinChunk, AvgChunk: AvgChunk, MaxChunk: MaxChunk}}
	g, gctx := errgroup.WithContext(ctx)
	type job struct {
		i    int
		data []byte
	}
	jobs := make(chan job, 2*opt.Workers)
	for range opt.Workers {
		g.Go(func() error {
			for j := range jobs {
				c, err := imp.chunk(j.data)
				if err != nil {
					return err
				}
				imp.mu.Lock()
				res.Index.Chunks[j.i].ID, res.Index.Chunks[j.i].Stored = c.id, c.stored
				imp.mu.Unlock()
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		for {
			c, err := chunker.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("chunkstore: read image at byte %d: %w", res.Index.Size, err)
			}
			imp.mu.Lock()
			res.Index.Chunks = append(res.Index.Chunks, IndexChunk{Offset: int64(c.Offset), Size: int64(c.Length)})
			imp.mu.Unlock()
			res.Index.Size += int64(c.Length)
			// The chunker reuses its buffer.
			select {
			case jobs <- job{len(res.Index.Chunks) - 1, bytes.Clone(c.Data)}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The decompressor may stop before the end of the file (trailing
	// padding); the source digest is the whole file's.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("chunkstore: read image: %w", err)
	}
	copy(res.Index.SHA256[:], whole.Sum(nil))
	copy(res.Index.Source[:], source.Sum(nil))
	res.Chunks = len(res.Index.Chunks)
	for _, c := range res.Index.Chunks {
		if c.ID.IsZero() {
			res.ZeroChunks++
			res.ZeroBytes += c.Size
		}
	}
	for _, c := range imp.seen {
		if c.added {
			res.NewChunks++
			res.NewStored += c.stored
			res.NewRaw += c.raw
		}
	}
	if err := syncFS(store); err != nil {
		return nil, fmt.Errorf("chunkstore: sync chunk store: %w", err)
	}
	opt.Logger.Info("image imported", "bytes", res.Index.Size, "source_sha256", res.Index.SourceDigest(), "chunks", res.Chunks, "new_chunks", res.NewChunks,
		"new_stored", res.NewStored, "zero_bytes", res.ZeroBytes, "sha256", res.Index.Digest())
	return res, nil
}

// importer stores the chunks of one Import.
type importer struct {
	store string
	enc   *zstd.Encoder // EncodeAll is safe for concurrent use
	mu    sync.Mutex
	seen  map[ChunkID]*storedChunk
}

// storedChunk is a distinct chunk of the image; ready is closed once it
// is in the store.
type storedChunk struct {
	id     ChunkID
	raw    int64
	stored int64
	added  bool
	err    error
	ready  chan struct{}
}

// chunk stores data unless the store has it, once per distinct chunk.
func (imp *importer) chunk(data []byte) (*storedChunk, error) {
	if IsZero(data) {
		return &storedChunk{}, nil
	}
	id := ChunkID(sha256.Sum256(data))
	imp.mu.Lock()
	c := imp.seen[id]
	if c != nil {
		imp.mu.Unlock()
		<-c.ready
		return c, c.err
	}
	c = &storedChunk{id: id, raw: int64(len(data)), ready: make(chan struct{})}
	imp.seen[id] = c
	imp.mu.Unlock()
	defer close(c.ready)
	c.stored, c.added, c.err = imp.store1(id, data)
	return c, c.err
}

// store1 writes the chunk's file unless it exists, and returns its size.
func (imp *importer) store1(id ChunkID, data []byte) (stored int64, added bool, err error) {
	path := ChunkPath(imp.store, id)
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return fi.Size(), false, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, false, fmt.Errorf("chunkstore: chunk store: %w", err)
	}
	z := imp.enc.EncodeAll(data, make([]byte, 0, len(data)/2))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, false, fmt.Errorf("chunkstore: chunk store: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".new-*")
	if err != nil {
		return 0, false, fmt.Errorf("chunkstore: chunk store: %w", err)
	}
	_, err = f.Write(z)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, false, fmt.Errorf("chunkstore: chunk store: %w", err)
	}
	return int64(len(z)), true, nil
}

// IsZero reports whether b holds only zero bytes.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroPage))
		if !bytes.Equal(b[:n], zeroPage[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// zeroPage is compared with (bytes.Equal is vectorised).
var zeroPage [16 << 10]byte
