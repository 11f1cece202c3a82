package imaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/imaging/internal/testimage"
)

// peerDisk is a disk file holding, from off, the image assembled by
// Assemble with OnDisk feeding held, and after it a config drive.
type peerDisk struct {
	f      *os.File
	ix     *chunkstore.Index
	held   *HeldChunks
	off    int64
	img    []byte
	config []byte // the "config drive" behind the image
}

func newPeerDisk(t *testing.T, seed uint64, size int, hold int64) *peerDisk {
	t.Helper()
	dir := t.TempDir()
	img := testimage.Bytes(seed, size)
	r := importBytes(t, dir, img)
	const off = 1 << 20
	d := &peerDisk{ix: r.Index, held: NewHeldChunks(len(r.Index.Chunks)), off: off, img: img,
		config: bytes.Repeat([]byte("#cloud-config\npassword: secret\n"), 4096)}
	p := writeFile(t, make([]byte, off+len(img)))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteAt(d.config, off+int64(len(img))); err != nil {
		t.Fatal(err)
	}
	d.f = f
	_, err = Assemble(t.Context(), f, AssembleOptions{Index: r.Index, Source: newStoreFS(dir), Offset: off, Hold: hold,
		OnDisk: d.held.Add, RetryDelay: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *peerDisk) server(t *testing.T) *ChunkServer {
	return &ChunkServer{Index: d.ix, Held: d.held, Disk: d.f, Offset: d.off, Logger: testLogger(t)}
}

func peerPath(id chunkstore.ChunkID) string {
	return agentapi.ChunkURL(agentapi.PeerChunks, id.String())
}

// get asks h for path and returns the status and the decoded body.
func get(t *testing.T, h http.Handler, method, path string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	if rec.Code != http.StatusOK || method != http.MethodGet {
		return rec.Code, nil
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/zstd" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	b, err := dec.DecodeAll(rec.Body.Bytes(), nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rec.Code, b
}

// TestChunkServerServesHeld: every non-zero chunk of the assembled image
// past the held head is served, its bytes exactly; the head's are not.
func TestChunkServerServesHeld(t *testing.T) {
	const hold = 256 << 10
	d := newPeerDisk(t, 11, 4<<20, hold)
	s := d.server(t)
	served := 0
	for i, c := range d.ix.Chunks {
		if c.ID.IsZero() {
			continue
		}
		code, b := get(t, s, http.MethodGet, peerPath(c.ID))
		switch {
		case c.Offset < hold && code != http.StatusNotFound:
			// A chunk in the head may also be elsewhere; this image
			// has no repeats there.
			t.Errorf("chunk %d in the held head: %d, want 404", i, code)
		case c.Offset >= hold && (code != http.StatusOK || !bytes.Equal(b, d.img[c.Offset:c.Offset+c.Size])):
			t.Errorf("chunk %d at byte %d: %d, %d bytes", i, c.Offset, code, len(b))
		case code == http.StatusOK:
			served++
		}
	}
	if served == 0 {
		t.Fatal("nothing served")
	}
	if code, _ := get(t, s, http.MethodHead, peerPath(d.ix.Chunks[len(d.ix.Chunks)-1].ID)); code != http.StatusOK {
		t.Errorf("HEAD: %d", code)
	}
}

// TestChunkServerRefuses: nothing but held chunks of the index: not a
// chunk not yet written, not the config drive's bytes, not an unknown
// or zero id, not another path or method.
func TestChunkServerRefuses(t *testing.T) {
	d := newPeerDisk(t, 12, 2<<20, 0)
	s := d.server(t)
	var notYet chunkstore.IndexChunk
	for i, c := range d.ix.Chunks {
		if !c.ID.IsZero() && i > 2 {
			notYet = c
			d.held.Remove(i)
			break
		}
	}
	config := chunkstore.ChunkID(sha256.Sum256(d.config[:64<<10]))
	good := d.ix.Chunks[0].ID.String()
	for _, tc := range []struct {
		name, method, path string
		want               int
	}{
		{"not-written", "GET", peerPath(notYet.ID), 404},
		{"config-drive", "GET", peerPath(config), 404},
		{"unknown-id", "GET", peerPath(chunkstore.ChunkID{1, 2, 3}), 404},
		{"zero-chunk", "GET", peerPath(chunkstore.ChunkID{}), 404},
		{"wrong-prefix-dir", "GET", agentapi.PeerChunks + "/0000/" + good + ".zst", 404},
		{"upper-case", "GET", agentapi.PeerChunks + "/" + strings.ToUpper(good[:4]) + "/" + strings.ToUpper(good) + ".zst", 404},
		{"no-suffix", "GET", agentapi.PeerChunks + "/" + good[:4] + "/" + good, 404},
		{"artifacts-path", "GET", "/artifacts/chunks/" + good[:4] + "/" + good + ".zst", 404},
		{"traversal", "GET", agentapi.PeerChunks + "/../../etc/passwd", 404},
		{"post", "POST", peerPath(d.ix.Chunks[0].ID), 405},
		{"good", "GET", peerPath(d.ix.Chunks[0].ID), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := get(t, s, tc.method, tc.path); code != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.path, code, tc.want)
			}
		})
	}
}

// TestChunkServerChangedOnDisk: a chunk overwritten after it was written
// is not served (404), and is no longer held.
func TestChunkServerChangedOnDisk(t *testing.T) {
	d := newPeerDisk(t, 13, 2<<20, 0)
	s := d.server(t)
	i := len(d.ix.Chunks) / 3
	for d.ix.Chunks[i].ID.IsZero() {
		i++
	}
	c := d.ix.Chunks[i]
	if code, _ := get(t, s, "GET", peerPath(c.ID)); code != 200 {
		t.Fatalf("before the change: %d", code)
	}
	if _, err := d.f.WriteAt([]byte("grown GPT"), d.off+c.Offset+c.Size/2); err != nil {
		t.Fatal(err)
	}
	if code, b := get(t, s, "GET", peerPath(c.ID)); code != 404 {
		t.Errorf("after the change: %d, %d bytes; want 404", code, len(b))
	}
	if d.held.Has(i) || d.held.Bitmap().Has(i) {
		t.Error("the changed chunk is still held")
	}
}

// blockingDisk blocks every read until release is closed.
type blockingDisk struct {
	io.ReaderAt
	entered chan struct{}
	release chan struct{}
}

func (b *blockingDisk) ReadAt(p []byte, off int64) (int, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.ReaderAt.ReadAt(p, off)
}

// TestChunkServerUploads: beyond Uploads requests at once, 503 at once.
func TestChunkServerUploads(t *testing.T) {
	d := newPeerDisk(t, 14, 1<<20, 0)
	disk := &blockingDisk{ReaderAt: d.f, entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := d.server(t)
	s.Disk, s.Uploads = disk, 1
	path := peerPath(d.ix.Chunks[0].ID)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Errorf("first: %d", rec.Code)
		}
	}()
	<-disk.entered
	if code, _ := get(t, s, "GET", path); code != http.StatusServiceUnavailable {
		t.Errorf("second at once: %d, want 503", code)
	}
	close(disk.release)
	wg.Wait()
	go func() { <-disk.entered }()
	if code, _ := get(t, s, "GET", path); code != 200 {
		t.Errorf("after: %d", code)
	}
}

// TestChunkServerServe: over a real socket, and it stops with its
// context.
func TestChunkServerServe(t *testing.T) {
	d := newPeerDisk(t, 15, 1<<20, 0)
	s := d.server(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + peerPath(d.ix.Chunks[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// TestChunkServerMaxConns: beyond MaxConns open connections a new one
// is not served until one closes; Serve still stops with its context.
func TestChunkServerMaxConns(t *testing.T) {
	d := newPeerDisk(t, 16, 1<<20, 0)
	s := d.server(t)
	s.MaxConns = 2
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + ln.Addr().String() + peerPath(d.ix.Chunks[0].ID)
	if resp, err := client.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("served a third connection: %s", resp.Status)
	}
	held[0].Close()
	client.Timeout = 5 * time.Second
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("after a connection closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop with connections held")
	}
	held[1].Close()
}
