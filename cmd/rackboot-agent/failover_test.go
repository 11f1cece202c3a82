package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// fleetClient is a client of the appliances at urls, in that order,
// logging to the returned buffer.
func fleetClient(t *testing.T, urls ...string) (*client, *syncBuffer) {
	t.Helper()
	var servers []*url.URL
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, u)
	}
	logs := &syncBuffer{}
	mac, _ := net.ParseMAC("52:54:00:00:01:01")
	return newClient(config{Servers: servers, MAC: mac, Token: testToken}, nil, slog.New(slog.NewTextHandler(logs, nil))), logs
}

// paths is the method and path of each request.
func paths(rs []request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// TestClientFailover: a request that fails at an appliance with a
// retryable error goes at once to the next, and so do the requests
// after it; a refusal does not move them.
func TestClientFailover(t *testing.T) {
	status := func(code int) map[string]func() (int, string) {
		return map[string]func() (int, string){agentapi.PathPlan: func() (int, string) { return code, `{"error":"x"}` }}
	}
	for _, tt := range []struct {
		name    string
		a, b    map[string]func() (int, string) // the answers of A and B; nil a: A is down
		wantErr int                             // the plan's *apiError status, 0: none
		wantA   []string
		wantB   []string
		logged  string // in the log, with A and B for their URLs
	}{
		{name: "A down", wantA: nil, wantB: []string{"GET /api/agent/plan", "POST /api/agent/log"},
			logged: "connect: connection refused); going on with B"},
		{name: "A answers 503", a: status(503), wantA: []string{"GET /api/agent/plan"}, wantB: []string{"GET /api/agent/plan", "POST /api/agent/log"},
			logged: "appliance A unreachable (GET /api/agent/plan: appliance answered 503 Service Unavailable: x); going on with B"},
		{name: "A answers 429", a: status(429), wantA: []string{"GET /api/agent/plan"}, wantB: []string{"GET /api/agent/plan", "POST /api/agent/log"},
			logged: "going on with B"},
		{name: "A refuses the token: no failover", a: status(401), wantErr: 401, wantA: []string{"GET /api/agent/plan", "POST /api/agent/log"}},
		{name: "both answer 503: each tried once, then A again", a: status(503), b: status(503), wantErr: 503,
			wantA: []string{"GET /api/agent/plan", "POST /api/agent/log"}, wantB: []string{"GET /api/agent/plan"}, logged: "going on with A"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			recA, recB := &recorder{answers: tt.a}, &recorder{answers: tt.b}
			a, b := httptest.NewServer(recA), httptest.NewServer(recB)
			t.Cleanup(a.Close)
			t.Cleanup(b.Close)
			if tt.a == nil {
				a.Close()
			}
			c, logs := fleetClient(t, a.URL, b.URL)
			_, err := c.plan(t.Context())
			var ae *apiError
			switch {
			case tt.wantErr == 0 && err != nil:
				t.Fatalf("plan: %v", err)
			case tt.wantErr != 0 && (!errors.As(err, &ae) || ae.Status != tt.wantErr):
				t.Fatalf("plan: %v, want a %d", err, tt.wantErr)
			}
			// The next request goes where the last one went on to.
			c.log(t.Context(), agentapi.Log{Lines: []string{"x"}})
			if diff := cmp.Diff(tt.wantA, paths(recA.got())); diff != "" {
				t.Errorf("A's requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantB, paths(recB.got())); diff != "" {
				t.Errorf("B's requests (-want +got):\n%s", diff)
			}
			got := strings.NewReplacer(a.URL, "A", b.URL, "B").Replace(logs.String())
			if tt.logged == "" && strings.Contains(got, "going on with") {
				t.Errorf("a failover was logged:\n%s", got)
			}
			if !strings.Contains(got, tt.logged) {
				t.Errorf("log lacks %q:\n%s", tt.logged, got)
			}
		})
	}
}

// TestClientFailoverOnDeadline: an appliance too slow to answer within
// the caller's deadline (a progress report's five seconds) loses the
// requests after it.
func TestClientFailoverOnDeadline(t *testing.T) {
	slow := make(chan struct{})
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-slow }))
	recB := &recorder{}
	b := httptest.NewServer(recB)
	t.Cleanup(b.Close)
	t.Cleanup(a.Close)
	t.Cleanup(func() { close(slow) })
	c, logs := fleetClient(t, a.URL, b.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := c.progress(ctx, agentapi.Progress{Phase: agentapi.PhaseImage}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("progress to a hung appliance: %v, want the deadline", err)
	}
	if len(recB.got()) != 0 {
		t.Errorf("the request was sent again to B after its deadline")
	}
	if err := c.log(t.Context(), agentapi.Log{Lines: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"POST /api/agent/log"}, paths(recB.got())); diff != "" {
		t.Errorf("B's requests (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), "going on with "+b.URL) {
		t.Errorf("log lacks the failover:\n%s", logs)
	}
}

// TestClientOneAppliance: with one appliance a failure is only returned,
// as before there were several.
func TestClientOneAppliance(t *testing.T) {
	rec := &recorder{answers: map[string]func() (int, string){agentapi.PathPlan: func() (int, string) { return 503, `{"error":"x"}` }}}
	ts := httptest.NewServer(rec)
	t.Cleanup(ts.Close)
	c, logs := fleetClient(t, ts.URL)
	if _, err := c.plan(t.Context()); !retryable(err) {
		t.Fatalf("plan: %v, want a retryable error", err)
	}
	if n := len(rec.got()); n != 1 || logs.String() != "" {
		t.Errorf("%d requests, log %q; want one request and no log", n, logs.String())
	}
}

// TestImageFailoverResumes: the appliance serving the raw image dies
// mid-way; the download goes on at the next appliance from the byte it
// reached (a Range request), verified against the plan's digest, and the
// final report goes there too.
func TestImageFailoverResumes(t *testing.T) {
	img := make([]byte, 3<<20+12345)
	rand.Read(img)
	sum := sha256.Sum256(img)
	const cut = 1 << 20

	recA, recB := &recorder{}, &recorder{}
	var mu sync.Mutex
	var ranges []string // B's Range headers
	var bAuth string
	var a *httptest.Server
	a = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/artifacts/os.img" {
			recA.ServeHTTP(w, r)
			return
		}
		// Dies mid-way, as kill -9 does: the body cut, no more
		// connections.
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		w.WriteHeader(http.StatusOK)
		w.Write(img[:cut])
		w.(http.Flusher).Flush()
		a.Listener.Close()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(a.Close)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/artifacts/os.img" {
			recB.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		bAuth = r.Header.Get("Authorization")
		mu.Unlock()
		http.ServeContent(w, r, "os.img", time.Time{}, bytes.NewReader(img))
	}))
	t.Cleanup(b.Close)

	c, logs := fleetClient(t, a.URL, b.URL)
	if _, err := c.plan(t.Context()); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	open := c.imageSource(agentapi.Image{URL: a.URL + "/artifacts/os.img"})
	res, err := imaging.Stream(t.Context(), open, dst, imaging.StreamOptions{Format: agentapi.FormatRaw, SHA256: hex.EncodeToString(sum[:]),
		RetryDelay: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("stream: %v\nlog:\n%s", err, logs)
	}
	if res.Resumes != 1 || res.Written != int64(len(img)) {
		t.Errorf("stream: %d resumes, %d bytes written; want 1 resume, %d bytes", res.Resumes, res.Written, len(img))
	}
	got, err := os.ReadFile(dst.Name())
	if err != nil || !bytes.Equal(got, img) {
		t.Errorf("the disk does not hold the image (%v)", err)
	}
	mu.Lock()
	if len(ranges) != 1 || !strings.HasPrefix(ranges[0], "bytes=") || ranges[0] == "bytes=0-" {
		t.Errorf("B's image requests had ranges %q, want one, from where A stopped", ranges)
	} else if from, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(ranges[0], "bytes="), "-")); err != nil || from > cut {
		t.Errorf("B's range %q: want a start at most %d", ranges[0], cut)
	}
	if bAuth != "Bearer "+testToken {
		t.Errorf("the image at B's API origin was fetched with Authorization %q, want the install token", bAuth)
	}
	mu.Unlock()
	if _, err := c.done(t.Context(), agentapi.Done{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"GET /api/agent/plan"}, paths(recA.got())); diff != "" {
		t.Errorf("A's API requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"POST /api/agent/done"}, paths(recB.got())); diff != "" {
		t.Errorf("B's API requests (-want +got):\n%s", diff)
	}
	if want := "appliance " + a.URL + " unreachable ("; !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "going on with "+b.URL) {
		t.Errorf("log lacks the failover from A to B:\n%s", logs)
	}
}

// TestChunksFailover: a chunk fetch that fails at an appliance moves the
// next one to the next appliance, with the token when the chunks are at
// its API's origin.
func TestChunksFailover(t *testing.T) {
	chunk := []byte("a zstd frame, as far as this test cares")
	id := chunkstore.ChunkID(sha256.Sum256(chunk))
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(a.Close)
	var auth string
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/chunks/"+id.String()[:4]+"/"+id.String()+".zst" {
			http.NotFound(w, r)
			return
		}
		auth = r.Header.Get("Authorization")
		w.Write(chunk)
	}))
	t.Cleanup(b.Close)
	c, logs := fleetClient(t, a.URL, b.URL)
	store := c.chunkStore(agentapi.Image{URL: a.URL + "/chunks/os.idx", Chunks: a.URL + "/chunks"})
	if _, err := store.Fetch(t.Context(), id, int64(len(chunk))); err == nil {
		t.Fatal("fetch from A answering 503 succeeded")
	}
	got, err := store.Fetch(t.Context(), id, int64(len(chunk)))
	if err != nil || !bytes.Equal(got, chunk) {
		t.Fatalf("fetch after the failover: %q, %v", got, err)
	}
	if auth != "Bearer "+testToken {
		t.Errorf("B got Authorization %q, want the install token", auth)
	}
	if !strings.Contains(logs.String(), "going on with "+b.URL) {
		t.Errorf("log lacks the failover:\n%s", logs)
	}
}

// TestAt: a URL on one appliance moves to another by its host, keeping
// its scheme, port and path; at an appliance's API origin, to the other's
// API origin; elsewhere, nowhere.
func TestAt(t *testing.T) {
	c, _ := fleetClient(t, "https://192.0.2.1:8443", "https://192.0.2.2:9443", "https://[2001:db8::3]")
	for _, tt := range []struct {
		raw, to, want string
	}{
		{"https://192.0.2.1:8443/chunks?x=1", "https://192.0.2.2:9443", "https://192.0.2.2:9443/chunks?x=1"},
		{"http://192.0.2.1:8080/artifacts/os.img?mac=52-54-00-00-01-01", "https://192.0.2.2:9443", "http://192.0.2.2:8080/artifacts/os.img?mac=52-54-00-00-01-01"},
		{"http://192.0.2.2:8080/artifacts/os.img", "https://192.0.2.1:8443", "http://192.0.2.1:8080/artifacts/os.img"},
		{"http://192.0.2.1/os.img", "https://[2001:db8::3]", "http://[2001:db8::3]/os.img"},
		{"http://192.0.2.1:8080/os.img", "https://[2001:db8::3]", "http://[2001:db8::3]:8080/os.img"},
		{"http://mirror.example.com/os.img", "https://192.0.2.2:9443", "http://mirror.example.com/os.img"},
		{"http://192.0.2.1:8080/a%2Fb/os.img?mac=52-54-00-00-01-01", "https://192.0.2.1:8443", "http://192.0.2.1:8080/a%2Fb/os.img?mac=52-54-00-00-01-01"},
		{"https://192.0.2.1:8443/chunks", "https://192.0.2.1:8443", "https://192.0.2.1:8443/chunks"},
	} {
		to, _ := url.Parse(tt.to)
		if got := c.at(tt.raw, to); got != tt.want {
			t.Errorf("at(%s, %s) = %s, want %s", tt.raw, tt.to, got, tt.want)
		}
	}
}

// TestFailoverBodyKeepsSize: imaging's resumer checks the size an
// appliance announces against the first one's through the body.
func TestFailoverBodyKeepsSize(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 100)) }))
	t.Cleanup(ts.Close)
	c, _ := fleetClient(t, ts.URL)
	rc, err := c.imageSource(agentapi.Image{URL: ts.URL + "/os.img"})(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if s, ok := rc.(interface{ Size() int64 }); !ok || s.Size() != 100 {
		t.Errorf("the image body does not say its size 100")
	}
}
