package imaging

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// HeldChunks is the set of an index's chunks that are on the agent's
// disk, verified: what it may serve its peers and announces to the
// appliance (docs/DESIGN.md, "Peer distribution"). Assemble adds to it
// through AssembleOptions.OnDisk (pass Add); ChunkServer removes a chunk
// whose bytes no longer verify. Safe for concurrent use.
type HeldChunks struct {
	mu   sync.Mutex
	have agentapi.Bitmap
}

// NewHeldChunks returns an empty set over an index of n chunks.
func NewHeldChunks(n int) *HeldChunks { return &HeldChunks{have: agentapi.NewBitmap(n)} }

// Add marks chunk i held; out of range is ignored.
func (h *HeldChunks) Add(i int) { h.set(i, true) }

// Remove marks chunk i not held.
func (h *HeldChunks) Remove(i int) { h.set(i, false) }

func (h *HeldChunks) set(i int, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case i < 0 || i/8 >= len(h.have):
	case on:
		h.have.Set(i)
	default:
		h.have.Clear(i)
	}
}

// Has reports whether chunk i is held.
func (h *HeldChunks) Has(i int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.have.Has(i)
}

// Bitmap returns a copy of the set, for a holdings report.
func (h *HeldChunks) Bitmap() agentapi.Bitmap {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(agentapi.Bitmap(nil), h.have...)
}

// ChunkServer serves an installing agent's peers the chunks of the
// image it installs that are on its disk: GET
// agentapi.PeerChunks/XXXX/ID.zst, the store's naming, answered with a
// zstd frame of the chunk's bytes (Content-Type application/zstd),
// compressed by the agent at zstd's fastest level, so not the store's
// file byte for byte (docs/DESIGN.md, "Peer distribution").
//
// It serves only chunks of Index that Held names, read back from Disk
// at their place and verified against their id at every request; a
// chunk whose bytes no longer verify (the held head rewritten, the
// table grown over the image's backup GPT, a disk error) is dropped
// from Held and answered 404, as is anything else: another path, an id
// not in Index, the all-zero chunk. It never reads outside the image's
// chunks, so never the config drive or a preserved partition.
//
// Set the fields before the first request; safe for concurrent use.
type ChunkServer struct {
	// Index is the published index the agent installs. Required.
	Index *chunkstore.Index
	// Held is what Assemble has put on the disk. Required.
	Held *HeldChunks
	// Disk reads the target; Offset is where the image starts on it.
	// A buffered descriptor: O_DIRECT reads need aligned buffers.
	Disk   io.ReaderAt
	Offset int64
	// Uploads is how many chunks it serves at once; a request beyond
	// is answered 503 at once, and its agent falls back to the
	// appliance. Default 4.
	Uploads int
	// MaxConns bounds the connections Serve keeps open: beyond, new
	// ones wait in the kernel's accept queue (and their requester's 1 s
	// connect timeout sends it to the appliance), so a flood from the
	// segment cannot take the installer's file descriptors. Default 64.
	MaxConns int
	// Logger receives chunks that no longer verify. Default
	// slog.Default().
	Logger *slog.Logger

	once  sync.Once
	err   error
	pos   map[chunkstore.ChunkID][]int
	enc   *zstd.Encoder
	slots chan struct{}

	requested atomic.Int64 // unix nanoseconds of the last chunk request
	served    atomic.Int64 // bytes of chunk frames sent
}

// LastRequest is when a peer last asked for a chunk (answered or not);
// zero before the first. An agent whose install is done stops serving
// once nobody has asked for a while: the wave has ended.
func (s *ChunkServer) LastRequest() time.Time {
	if ns := s.requested.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Served is the bytes of chunk frames the server has sent its peers.
func (s *ChunkServer) Served() int64 { return s.served.Load() }

func (s *ChunkServer) init() {
	s.pos = make(map[chunkstore.ChunkID][]int, len(s.Index.Chunks))
	for i, c := range s.Index.Chunks {
		if !c.ID.IsZero() {
			s.pos[c.ID] = append(s.pos[c.ID], i)
		}
	}
	// The verified bytes need no frame checksum; EncodeAll of one
	// chunk writes one frame stating its size.
	s.enc, s.err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false))
	uploads := s.Uploads
	if uploads <= 0 {
		uploads = 4
	}
	s.slots = make(chan struct{}, uploads)
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
}

// ServeHTTP implements http.Handler.
func (s *ChunkServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.once.Do(s.init)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	id, ok := peerChunkID(r.URL.Path)
	if !ok || s.err != nil {
		http.NotFound(w, r)
		return
	}
	s.requested.Store(time.Now().UnixNano())
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	b := s.read(id)
	if b == nil {
		http.NotFound(w, r)
		return
	}
	z := s.enc.EncodeAll(b, make([]byte, 0, len(b)/2))
	putChunkBuf(b)
	w.Header().Set("Content-Type", "application/zstd")
	w.Header().Set("Content-Length", strconv.Itoa(len(z)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		if n, _ := w.Write(z); n > 0 {
			s.served.Add(int64(n))
		}
	}
}

// read returns the bytes of chunk id from the first held place that
// still verifies, dropping the places that do not; nil if none.
func (s *ChunkServer) read(id chunkstore.ChunkID) []byte {
	for _, i := range s.pos[id] {
		if !s.Held.Has(i) {
			continue
		}
		c := s.Index.Chunks[i]
		b := getChunkBuf(int(c.Size))
		n, err := s.Disk.ReadAt(b, s.Offset+c.Offset)
		if n == len(b) && chunkstore.ChunkID(sha256.Sum256(b)) == id {
			return b
		}
		putChunkBuf(b)
		s.Held.Remove(i)
		s.Logger.Warn("a chunk on the disk no longer verifies: not served", "chunk", id.String(), "offset", c.Offset, "err", err)
	}
	return nil
}

// peerChunkID parses agentapi.PeerChunks/XXXX/ID.zst.
func peerChunkID(p string) (chunkstore.ChunkID, bool) {
	rest, ok := strings.CutPrefix(p, agentapi.PeerChunks+"/")
	if !ok || len(rest) != 4+1+64+4 || rest[4] != '/' || !strings.HasSuffix(rest, ".zst") {
		return chunkstore.ChunkID{}, false
	}
	hex := rest[5 : 5+64]
	id, err := chunkstore.ParseChunkID(hex)
	if err != nil || rest[:4] != hex[:4] || id.String() != hex || id.IsZero() {
		return chunkstore.ChunkID{}, false
	}
	return id, true
}

// Serve serves the chunks on ln until ctx ends, then shuts down within
// 5 s. Peers are on the segment: the timeouts are short, and at most
// MaxConns connections are open at once.
func (s *ChunkServer) Serve(ctx context.Context, ln net.Listener) error {
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = 64
	}
	ln = &limitListener{Listener: ln, slots: make(chan struct{}, maxConns), closed: make(chan struct{})}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		// A fresh context: the serving one has ended.
		sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		err := srv.Shutdown(sctx)
		if err != nil {
			// Requests still running after 5 s are cut.
			srv.Close()
		}
		done <- err
	}()
	err := srv.Serve(ln)
	cancel()
	if !errors.Is(err, http.ErrServerClosed) {
		<-done
		return fmt.Errorf("imaging: chunk server: %w", err)
	}
	return <-done
}

// limitListener accepts a connection only while fewer than cap(slots)
// are open; the others wait in the kernel's accept queue.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn gives its slot back once, at its first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
