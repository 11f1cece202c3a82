package imaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rackboot/rackboot/agentapi"
)

// StreamOptions configures Stream. Zero values mean the defaults.
type StreamOptions struct {
	// Format of the image file: FormatZstd, FormatGzip, FormatXz,
	// FormatRaw, or FormatAuto to detect it from the magic bytes.
	Format string
	// SHA256 is the expected hex digest of the image file as published
	// (compressed). Required.
	SHA256 string
	// Offset is where on the target the first decompressed byte goes.
	Offset int64
	// Limit is the most decompressed bytes the target takes (the disk or
	// partition size); writing stops with ErrImageTooLarge before
	// crossing it. Zero means no limit.
	Limit int64
	// Total is the decompressed size when known, for progress.
	Total int64
	// BufferSize is the size of each write; a multiple of 1 MiB keeps
	// writes aligned for any sector size. Default 8 MiB.
	BufferSize int
	// Buffers is how many write buffers circulate between the stages;
	// two keep both sides busy, a few more absorb jitter. Default 4.
	Buffers int
	// Progress, if set, is called from the writing goroutine at most every
	// ProgressInterval (default 1s), and once at the end. It must return
	// quickly: the writer waits for it.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Retries is how many consecutive failed attempts to open or read the
	// source are tolerated before giving up (progress resets the count).
	// Default 8.
	Retries int
	// RetryDelay is the wait before the first retry, doubled each time up
	// to 30s. Default 1s.
	RetryDelay time.Duration
	// Logger receives reconnections. Default slog.Default().
	Logger *slog.Logger
}

// Progress is a snapshot of an install step.
type Progress struct {
	Phase    agentapi.Phase `json:"phase"`              // agentapi.PhaseImage while streaming; see Installer for the others
	Done     int64          `json:"done,omitempty"`     // decompressed bytes written
	Total    int64          `json:"total,omitempty"`    // decompressed bytes expected, 0 if unknown
	Received int64          `json:"received,omitempty"` // compressed bytes received
	Rate     float64        `json:"rate,omitempty"`     // bytes written per second over the last interval; over the whole stream in the final report
	// A chunked image's Done counts the bytes assembled, reused or
	// written; Fetched is the compressed bytes fetched, Reused the bytes
	// found on the disk (Assemble).
	Fetched int64 `json:"fetched,omitempty"`
	Reused  int64 `json:"reused,omitempty"`
}

// StreamResult describes a completed, verified stream.
type StreamResult struct {
	Format   string        `json:"format"`   // the format decoded (after detection)
	Written  int64         `json:"written"`  // decompressed bytes written
	Received int64         `json:"received"` // compressed bytes read: the image file's size
	SHA256   string        `json:"sha256"`   // hex digest of the compressed bytes
	Resumes  int           `json:"resumes"`  // times the download was resumed after a cut
	Duration time.Duration `json:"duration"` // from first request to fsync done, in nanoseconds
}

func (o StreamOptions) withDefaults() StreamOptions {
	if o.BufferSize <= 0 {
		o.BufferSize = 8 << 20
	}
	if o.Buffers <= 0 {
		o.Buffers = 4
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	if o.Retries <= 0 {
		o.Retries = 8
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// compressedChunk is the size of the chunks of compressed data handed from
// the source to the hasher and the decoder.
const compressedChunk = 1 << 20

// Stream downloads an image through open, decompresses it and writes it to
// dst at opt.Offset, then checks the SHA-256 of the compressed bytes and
// syncs dst (when it has a Sync method, as *os.File does). It returns an
// error wrapping ErrChecksum on a mismatch: whatever was written must then
// not be booted.
//
// The stages run in their own goroutines and overlap: the source reads
// the file into chunks; the hasher hashes them while the decoder expands
// them into large buffers; the writer writes those with large aligned
// WriteAt calls and starts their writeback at once. For a raw image the
// source's chunks go straight to the writer, hashed while they are
// written. Buffers circulate in small pools, so the slowest stage sets the
// pace and memory stays bounded.
//
// A download cut mid-stream is resumed by the Opener from the compressed
// offset reached; the decoder and the hash do not notice.
func Stream(ctx context.Context, open Opener, dst io.WriterAt, opt StreamOptions) (StreamResult, error) {
	opt = opt.withDefaults()
	want, err := hex.DecodeString(opt.SHA256)
	if err != nil || len(want) != sha256.Size {
		return StreamResult{}, fmt.Errorf("imaging: stream: sha256 %q is not 64 hex digits", opt.SHA256)
	}
	g, gctx := errgroup.WithContext(ctx)
	s := &streamer{opt: opt, dst: dst, start: time.Now(), hash: sha256.New()}
	s.src = &resumer{ctx: gctx, open: open, retries: opt.Retries, delay: opt.RetryDelay, log: opt.Logger}
	defer s.src.Close()

	// The format is read from the first bytes before the stages start,
	// since it decides how they are connected.
	head := make([]byte, agentapi.MagicLen)
	n, err := io.ReadFull(s.src, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return StreamResult{}, fmt.Errorf("imaging: read image: %w", err)
	}
	s.source = io.MultiReader(bytes.NewReader(head[:n]), s.src)
	s.format = opt.Format
	if s.format == agentapi.FormatAuto {
		s.format = agentapi.SniffFormat(head[:n])
	}
	if _, err := agentapi.NewDecompressor(s.format, nil); err != nil {
		return StreamResult{}, err
	}

	raw := s.format == agentapi.FormatRaw
	inSize, inCount := compressedChunk, 2*opt.Buffers
	if raw {
		inSize, inCount = opt.BufferSize, opt.Buffers
	}
	s.inPool = newPool(inCount, inSize)
	s.toHash = make(chan *chunk, inCount)
	s.toDecode = make(chan *chunk, inCount)
	s.toWrite = s.toDecode // raw: the source feeds the writer
	g.Go(func() error { return s.readSource(gctx) })
	g.Go(s.hashChunks)
	if !raw {
		s.toWrite = make(chan *chunk, opt.Buffers)
		g.Go(func() error { return s.decode(gctx) })
	}
	g.Go(s.write)

	if err := g.Wait(); err != nil {
		switch {
		case errors.Is(err, errSourceAborted) && s.srcErr != nil:
			err = s.srcErr
		case ctx.Err() != nil && errors.Is(err, context.Canceled):
			err = ctx.Err()
		}
		return StreamResult{}, err
	}
	res := StreamResult{
		Format:   s.format,
		Written:  s.written,
		Received: s.received.Load(),
		SHA256:   hex.EncodeToString(s.hash.Sum(nil)),
		Resumes:  s.src.resumes,
	}
	if res.SHA256 != hex.EncodeToString(want) {
		return res, fmt.Errorf("%w: got %s, want %s (%d bytes received)", ErrChecksum, res.SHA256, hex.EncodeToString(want), res.Received)
	}
	if sy, ok := dst.(interface{ Sync() error }); ok {
		if err := sy.Sync(); err != nil {
			return res, fmt.Errorf("imaging: sync image: %w", err)
		}
	}
	res.Duration = time.Since(s.start)
	return res, nil
}

// streamer is one Stream's stages and the channels between them.
type streamer struct {
	opt    StreamOptions
	dst    io.WriterAt
	start  time.Time
	src    *resumer
	source io.Reader // the file from its first byte
	format string

	inPool   chan *chunk // chunks of the file
	toHash   chan *chunk // every chunk of the file, in order
	toDecode chan *chunk // the same chunks, for the decoder
	toWrite  chan *chunk // decompressed buffers (raw: toDecode)

	hash     hash.Hash
	received atomic.Int64 // bytes hashed, for progress
	sourceOK atomic.Bool  // the source reached the end of the file
	srcErr   error        // why the source stopped, when it failed
	written  int64
}

// readSource reads the file into chunks and hands each to the hasher and
// the decoder (or writer). The channels have room for every chunk of the
// pool, so the sends never block.
func (s *streamer) readSource(ctx context.Context) error {
	defer close(s.toHash)
	defer close(s.toDecode)
	for {
		var c *chunk
		select {
		case c = <-s.inPool:
		case <-ctx.Done():
			s.srcErr = ctx.Err()
			return s.srcErr
		}
		n, err := io.ReadFull(s.source, c.buf)
		c.n = n
		if n > 0 {
			c.refs.Store(2)
			s.toHash <- c
			s.toDecode <- c
		} else {
			c.pool <- c
		}
		switch err {
		case nil:
			continue
		case io.EOF, io.ErrUnexpectedEOF:
			s.sourceOK.Store(true)
			return nil
		}
		s.srcErr = fmt.Errorf("imaging: read image at byte %d: %w", s.src.off, err)
		return s.srcErr
	}
}

// hashChunks hashes every byte of the file, in order.
func (s *streamer) hashChunks() error {
	for c := range s.toHash {
		s.hash.Write(c.data())
		s.received.Add(int64(c.n))
		c.release()
	}
	return nil
}

// decode expands the compressed chunks into full write buffers.
func (s *streamer) decode(ctx context.Context) error {
	defer close(s.toWrite)
	cr := &chunkReader{ch: s.toDecode, eof: &s.sourceOK}
	defer cr.drain()
	dec, err := agentapi.NewDecompressor(s.format, cr)
	if err != nil {
		return err
	}
	defer dec.Close() // before drain: stops the decoder's goroutines
	outPool := newPool(s.opt.Buffers, s.opt.BufferSize)
	for {
		var c *chunk
		select {
		case c = <-outPool:
		case <-ctx.Done():
			return ctx.Err()
		}
		n, err := io.ReadFull(dec, c.buf)
		c.n = n
		if n > 0 {
			c.refs.Store(1)
			s.toWrite <- c
		} else {
			c.pool <- c
		}
		switch err {
		case nil:
			continue
		case io.EOF, io.ErrUnexpectedEOF:
			return nil
		}
		return fmt.Errorf("imaging: decompress image (%s): %w", s.format, err)
	}
}

// write writes the buffers at increasing offsets, never past the limit.
func (s *streamer) write() error {
	p := progressMeter{fn: s.opt.Progress, every: s.opt.ProgressInterval, total: s.opt.Total, start: s.start}
	defer func() {
		for c := range s.toWrite {
			c.release()
		}
	}()
	var off int64
	for c := range s.toWrite {
		if s.opt.Limit > 0 && off+int64(c.n) > s.opt.Limit {
			c.release()
			return fmt.Errorf("%w: more than %s", ErrImageTooLarge, agentapi.HumanBytes(s.opt.Limit))
		}
		at := s.opt.Offset + off
		if _, err := s.dst.WriteAt(c.data(), at); err != nil {
			c.release()
			return fmt.Errorf("imaging: write image at byte %d: %w", at, err)
		}
		startWriteback(s.dst, at, int64(c.n))
		off += int64(c.n)
		c.release()
		p.update(off, s.received.Load(), false)
	}
	s.written = off
	p.update(off, s.received.Load(), true)
	return nil
}

// progressMeter throttles progress reports.
type progressMeter struct {
	fn       func(Progress)
	every    time.Duration
	total    int64
	start    time.Time
	last     time.Time
	lastDone int64
}

func (p *progressMeter) update(done, received int64, final bool) {
	p.report(Progress{Done: done, Received: received}, final)
}

// updateChunked reports the progress of Assemble.
func (p *progressMeter) updateChunked(done, fetched, reused int64, final bool) {
	p.report(Progress{Done: done, Received: fetched, Fetched: fetched, Reused: reused}, final)
}

func (p *progressMeter) report(r Progress, final bool) {
	if p.fn == nil {
		return
	}
	done := r.Done
	now := time.Now()
	if p.last.IsZero() {
		p.last = p.start
	}
	if !final && now.Sub(p.last) < p.every {
		return
	}
	since, base := p.last, p.lastDone
	if final {
		since, base = p.start, 0
	}
	var rate float64
	if d := now.Sub(since).Seconds(); d > 0 {
		rate = float64(done-base) / d
	}
	p.last, p.lastDone = now, done
	r.Phase, r.Total, r.Rate = agentapi.PhaseImage, p.total, rate
	p.fn(r)
}
