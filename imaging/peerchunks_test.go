package imaging

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/imaging/internal/testimage"
)

// fakeAppliance serves a chunk store under /artifacts/chunks/ and
// redirects a request with peers=IMAGE to redirect(id), when that is
// not empty. With batches it answers ?ids= and ?where= as the appliance
// does, the latter with the base of redirect(id).
type fakeAppliance struct {
	dir      string
	image    string
	batches  bool
	redirect func(id string) string
	direct   atomic.Int64 // chunks served
	sent     atomic.Int64 // redirects
	badToken atomic.Int64 // requests without the token
	wheres   atomic.Int64 // where-requests answered
}

func (a *fakeAppliance) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		a.badToken.Add(1)
	}
	q := r.URL.Query()
	if a.batches && r.URL.Path == "/artifacts/chunks" && q.Get("mac") == "m" {
		a.batch(w, r)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/artifacts/chunks/")
	id, err := chunkstore.ParseChunkID(strings.TrimSuffix(name[strings.IndexByte(name, '/')+1:], ".zst"))
	if err != nil || r.URL.Query().Get("mac") != "m" {
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Get(agentapi.ParamPeers) == a.image && a.redirect != nil {
		if u := a.redirect(id.String()); u != "" {
			a.sent.Add(1)
			http.Redirect(w, r, u, http.StatusTemporaryRedirect)
			return
		}
	}
	z, err := os.ReadFile(chunkstore.ChunkPath(a.dir, id))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	a.direct.Add(1)
	w.Write(z)
}

// peerScenario is an image in a store behind a fake appliance, and a
// disk to assemble it on.
type peerScenario struct {
	img   []byte
	ix    *chunkstore.Index
	app   *fakeAppliance
	appTS *httptest.Server
}

func newPeerScenario(t *testing.T, seed uint64, batches bool) *peerScenario {
	t.Helper()
	dir := t.TempDir()
	img := testimage.Bytes(seed, 3<<20)
	r := importBytes(t, dir, img)
	app := &fakeAppliance{dir: dir, image: r.Index.Digest(), batches: batches}
	ts := httptest.NewServer(app)
	t.Cleanup(ts.Close)
	return &peerScenario{img: img, ix: r.Index, app: app, appTS: ts}
}

// batch answers ?where= and ?ids=.
func (a *fakeAppliance) batch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if where := q.Get(agentapi.ParamWhere); where != "" && q.Get(agentapi.ParamPeers) == a.image {
		a.wheres.Add(1)
		var places agentapi.ChunkPlaces
		for _, id := range strings.Split(where, ",") {
			base := ""
			if a.redirect != nil {
				if u := a.redirect(id); u != "" {
					a.sent.Add(1)
					base = u[:strings.Index(u, agentapi.PeerChunks+"/")]
				}
			}
			places.Peers = append(places.Peers, base)
		}
		json.NewEncoder(w).Encode(places)
		return
	}
	ids := q.Get("ids")
	if ids == "" {
		http.NotFound(w, r)
		return
	}
	var all []byte
	for _, id := range strings.Split(ids, ",") {
		z, err := os.ReadFile(filepath.Join(a.dir, id[:4], id+".zst"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		all = append(all, z...)
	}
	a.direct.Add(int64(len(strings.Split(ids, ","))))
	w.Write(all)
}

func (p *peerScenario) source(t *testing.T, failures *[]agentapi.PeerFailure) *PeerChunks {
	var mu sync.Mutex
	return &PeerChunks{
		Base: p.appTS.URL + "/artifacts/chunks?mac=m", Image: p.ix.Digest(), Header: http.Header{"Authorization": {"Bearer tok"}},
		PeerTimeout: 300 * time.Millisecond, Logger: testLogger(t),
		OnPeerFailure: func(f agentapi.PeerFailure) {
			mu.Lock()
			defer mu.Unlock()
			*failures = append(*failures, f)
		},
	}
}

// assemble assembles the image on a fresh file through src and checks
// the result.
func (p *peerScenario) assemble(t *testing.T, src ChunkSource) {
	t.Helper()
	f := writeFile(t, make([]byte, len(p.img)))
	if _, err := assembleFile(t, f, AssembleOptions{Index: p.ix, Source: src, Workers: 16}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, f, p.img)
}

// TestPeerChunksFromPeer: chunks redirected to a peer that serves them
// (a ChunkServer over another machine's disk) come from it, verified;
// the install token never reaches the peer. Chunk by chunk (redirects)
// and in batches (where-requests) alike.
func TestPeerChunksFromPeer(t *testing.T) {
	for _, batches := range []bool{false, true} {
		t.Run(modeName(batches), func(t *testing.T) { peerChunksFromPeer(t, batches) })
	}
}

// modeName names the subtests of an appliance with and without batches.
func modeName(batches bool) string {
	if batches {
		return "batches"
	}
	return "one-by-one"
}

func peerChunksFromPeer(t *testing.T, batches bool) {
	p := newPeerScenario(t, 21, batches)
	// The peer is a machine that installed the same image.
	d := newPeerDisk(t, 21, 3<<20, 0)
	var tokenLeaked atomic.Bool
	srv := d.server(t)
	srv.Uploads = 64 // the 16 workers at once are never turned away
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || strings.Contains(r.URL.RawQuery, "mac") {
			tokenLeaked.Store(true)
		}
		srv.ServeHTTP(w, r)
	}))
	defer peer.Close()
	p.app.redirect = func(id string) string { return agentapi.ChunkURL(peer.URL+agentapi.PeerChunks, id) }
	var failures []agentapi.PeerFailure
	src := p.source(t, &failures)
	src.PeerTimeout = 10 * time.Second // a slow machine under -race is not a failing peer
	p.assemble(t, src)
	app, peers := src.Received()
	if p.app.direct.Load() != 0 || app != 0 || peers == 0 || p.app.sent.Load() == 0 {
		t.Errorf("appliance served %d chunks (%d bytes), peers %d bytes after %d redirects; want every chunk from the peer",
			p.app.direct.Load(), app, peers, p.app.sent.Load())
	}
	if (p.app.wheres.Load() > 0) != batches {
		t.Errorf("%d where-requests with batches %v", p.app.wheres.Load(), batches)
	}
	if len(failures) != 0 || tokenLeaked.Load() || p.app.badToken.Load() != 0 {
		t.Errorf("failures %v, token sent to the peer %v, requests to the appliance without it %d", failures, tokenLeaked.Load(), p.app.badToken.Load())
	}
}

// TestPeerChunksBadPeers: a peer that serves corrupt bytes, hangs,
// breaks off mid-transfer, is gone or declines does not fail or stall
// the install: every chunk comes from the appliance, within a bounded
// time, and the peer is reported (bad or not) unless it declined. Chunk
// by chunk and in batches alike.
func TestPeerChunksBadPeers(t *testing.T) {
	for _, batches := range []bool{false, true} {
		t.Run(modeName(batches), func(t *testing.T) { peerChunksBadPeers(t, batches) })
	}
}

func peerChunksBadPeers(t *testing.T, batches bool) {
	enc, _ := zstd.NewWriter(nil)
	release := make(chan struct{})
	defer close(release)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		closed  bool // the peer's listener is closed before the install
		report  bool // the peer is reported
		bad     bool
		slow    bool // rested by the agent, not reported
	}{
		{name: "corrupt-frame", report: true, bad: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(bytes.Repeat([]byte{0x28, 0xb5}, 500))
		}},
		{name: "wrong-bytes", report: true, bad: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(enc.EncodeAll(bytes.Repeat([]byte("not the chunk "), 4096), nil))
		}},
		{name: "hangs", slow: true, handler: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}},
		{name: "hangs-mid-body", slow: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100000")
			w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}},
		{name: "disappears-mid-transfer", slow: true, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100000")
			w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
		{name: "gone", closed: true, report: true, handler: func(w http.ResponseWriter, r *http.Request) {}},
		{name: "busy", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}},
		{name: "no-longer-holds", handler: http.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeerScenario(t, 22, batches)
			var asked atomic.Int64
			peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked.Add(1)
				tc.handler(w, r)
			}))
			defer peer.Close()
			if tc.closed {
				peer.Close()
			}
			p.app.redirect = func(id string) string { return agentapi.ChunkURL(peer.URL+agentapi.PeerChunks, id) }
			var failures []agentapi.PeerFailure
			src := p.source(t, &failures)
			start := time.Now()
			p.assemble(t, src)
			took := time.Since(start)
			// 16 workers may each meet the peer once before it rests:
			// one PeerTimeout (300 ms) and the install itself. The bound
			// is loose for -race on a busy machine; that the peer is
			// asked at most once per worker (below) is the exact check.
			t.Logf("installed in %v", took)
			if took > 10*time.Second {
				t.Errorf("the install took %v with a failing peer", took)
			}
			distinct := int64(0)
			seen := map[chunkstore.ChunkID]bool{}
			for _, c := range p.ix.Chunks {
				if !c.ID.IsZero() && !seen[c.ID] {
					seen[c.ID] = true
					distinct++
				}
			}
			if got := p.app.direct.Load(); got != distinct {
				t.Errorf("the appliance served %d chunks, want all %d", got, distinct)
			}
			if _, peers := src.Received(); peers != 0 {
				t.Errorf("%d bytes counted from a failing peer", peers)
			}
			if !tc.report {
				if len(failures) != 0 {
					t.Errorf("a declining or slow peer was reported: %v", failures)
				}
				if n := asked.Load(); tc.slow && n > 16 {
					t.Errorf("the slow peer was asked %d times, want at most once per worker", n)
				}
				return
			}
			if len(failures) == 0 || len(failures) > 16 {
				t.Fatalf("%d failures reported, want 1 to 16 (one per worker at most)", len(failures))
			}
			want := agentapi.PeerFailure{Peer: peer.URL, Bad: tc.bad}
			for _, f := range failures {
				if f != want {
					t.Errorf("reported %+v, want %+v", f, want)
				}
			}
			// Rested after its failures: not asked again, though the
			// appliance kept sending every chunk there.
			if n := asked.Load(); n > 16 || p.app.sent.Load() != distinct {
				t.Errorf("the failed peer was asked %d times after %d redirects", n, p.app.sent.Load())
			}
		})
	}
}

// TestPeerChunksRefusesLocations: a redirect to anything but a peer's
// chunk path for that chunk is not followed.
func TestPeerChunksRefusesLocations(t *testing.T) {
	id := chunkstore.ChunkID{0xab, 0xcd}
	good := agentapi.ChunkURL("http://10.0.0.1:8081"+agentapi.PeerChunks, id.String())
	if base, ok := peerBase(good, id); !ok || base != "http://10.0.0.1:8081" {
		t.Errorf("peerBase(%s) = %q, %v", good, base, ok)
	}
	other := chunkstore.ChunkID{1}
	for _, loc := range []string{
		strings.Replace(good, "http:", "https:", 1),
		strings.Replace(good, "http://", "http://user:pw@", 1),
		good + "?x=1",
		good + "#f",
		agentapi.ChunkURL("http://10.0.0.1:8081"+agentapi.PeerChunks, other.String()),
		"http://10.0.0.1:8081/artifacts/chunks/abcd/" + id.String() + ".zst",
		"http://10.0.0.1:8081/chunks/../chunks/abcd/" + id.String() + ".zst",
		"/chunks/abcd/" + id.String() + ".zst",
		"http:///chunks/abcd/" + id.String() + ".zst",
	} {
		if base, ok := peerBase(loc, id); ok {
			t.Errorf("peerBase(%s) = %q, accepted", loc, base)
		}
	}
}

// TestPeerChunksWithoutImage: without Image no redirect is asked for.
func TestPeerChunksWithoutImage(t *testing.T) {
	p := newPeerScenario(t, 23, true)
	p.app.redirect = func(id string) string { return "http://127.0.0.1:1" + agentapi.ChunkURL(agentapi.PeerChunks, id) }
	var failures []agentapi.PeerFailure
	src := p.source(t, &failures)
	src.Image = ""
	p.assemble(t, src)
	if p.app.sent.Load() != 0 || len(failures) != 0 {
		t.Errorf("%d redirects, failures %v; want none", p.app.sent.Load(), failures)
	}
}
