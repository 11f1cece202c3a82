package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// dying wraps an appliance's handler: once die is called the appliance
// is dead, as after kill -9: its listener closed (new connections
// refused) and every request on a connection still open cut without an
// answer.
type dying struct {
	h    http.Handler
	ts   func() *httptest.Server
	once sync.Once
	dead chan struct{}
	// at, if it returns true for a request, kills the appliance while
	// serving it, after it did what it does to w.
	at func(w http.ResponseWriter, r *http.Request, h http.Handler) bool
}

func (d *dying) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-d.dead:
		panic(http.ErrAbortHandler)
	default:
	}
	if d.at(w, r, d.h) {
		d.die()
		panic(http.ErrAbortHandler) // the connection cut, no answer
	}
	d.h.ServeHTTP(w, r)
}

func (d *dying) die() {
	d.once.Do(func() {
		close(d.dead)
		d.ts().Listener.Close()
	})
}

// TestFleetFailover is issue 18's acceptance on loopback: two appliances
// of one fleet (one registry store and token key), the one that served
// the machine's script dies while the machine installs; the install
// completes through the other and is recorded exactly once.
func TestFleetFailover(t *testing.T) {
	img := newTestImage(t)
	const n01 = "52:54:00:00:01:01"
	var logged []string // the log batch A stored before dying without an answer
	for _, tt := range []struct {
		name string
		// at says when appliance A dies: true for the request it dies
		// serving, after doing to w what it does.
		at func(w http.ResponseWriter, r *http.Request, h http.Handler) bool
		// console is on the agent's console besides the failover.
		console string
	}{
		{"mid-image", func(w http.ResponseWriter, r *http.Request, h http.Handler) bool {
			if !strings.HasPrefix(r.URL.Path, "/artifacts/") {
				return false
			}
			// The first half of the image, then the cut.
			w.Header().Set("Content-Length", strconv.Itoa(len(img.zst)))
			w.WriteHeader(http.StatusOK)
			w.Write(img.zst[:len(img.zst)/2])
			w.(http.Flusher).Flush()
			return true
		}, "resumes=1"}, // from the byte reached, not from zero
		{"done committed, not answered", func(w http.ResponseWriter, r *http.Request, h http.Handler) bool {
			if r.URL.Path != "/api/agent/done" {
				return false
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			return true
		}, ""}, // done sent again at B: the same answer
		{"log batch stored, not answered", func(w http.ResponseWriter, r *http.Request, h http.Handler) bool {
			if r.URL.Path != "/api/agent/log" {
				return false
			}
			b, _ := io.ReadAll(r.Body)
			var l agentapi.Log
			if err := json.Unmarshal(b, &l); err != nil {
				t.Error(err)
			}
			logged = l.Lines
			r.Body = io.NopCloser(bytes.NewReader(b))
			h.ServeHTTP(httptest.NewRecorder(), r)
			return true
		}, ""},
		{"plan served, then gone", func(w http.ResponseWriter, r *http.Request, h http.Handler) bool {
			if r.URL.Path != "/api/agent/plan" {
				return false
			}
			h.ServeHTTP(w, r)
			w.(http.Flusher).Flush()
			return true
		}, "resumes=0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var aps []*appliance
			aps = newAppliances(t, img, 2, func(i int, h http.Handler) http.Handler {
				if i > 0 {
					return h
				}
				return &dying{h: h, ts: func() *httptest.Server { return aps[0].ts }, dead: make(chan struct{}), at: tt.at}
			})
			logged = nil
			a, b := aps[0], aps[1]
			tok := a.boot(n01, "n01")
			disk, disks := newTarget(t, targetSize)
			ag, screen := testAgent(t, a.url+","+b.url, n01, tok, disks)
			ctx, stop := context.WithCancel(context.Background())
			go ag.ship.run(ctx, 10*time.Millisecond)
			go ag.progress.run(ctx, 10*time.Millisecond)
			out, err := ag.attempt(context.Background())
			stop()
			if err != nil || !out.Done || out.State != "installed" {
				t.Fatalf("attempt: %+v, %v\nconsole:\n%s", out, err, screen)
			}
			if !strings.Contains(screen.String(), tt.console) {
				t.Errorf("console lacks %q:\n%s", tt.console, screen)
			}
			checkInstalled(t, disk, img)
			h := b.history(n01)
			if len(h) != 1 || h[0].Result != registry.ResultSuccess || h[0].Number != 1 {
				t.Fatalf("history %+v, want one successful attempt", h)
			}
			// Every line is recorded once, those of a batch whose answer
			// was lost too.
			for _, l := range logged {
				if n := slices.Index(h[0].Log, l); n < 0 || slices.Contains(h[0].Log[n+1:], l) {
					t.Errorf("line %q is not once in the attempt's log:\n%s", l, strings.Join(h[0].Log, "\n"))
				}
			}
			if want := "appliance " + a.url + " unreachable ("; !strings.Contains(screen.String(), want) || !strings.Contains(screen.String(), "going on with "+b.url) {
				t.Errorf("console lacks the failover from A to B:\n%s", screen)
			}
		})
	}
}

// TestFleetFailoverChunked: a chunked image, with and without peer
// distribution: the appliance serving the chunks dies at its third chunk
// request; the assembly goes on with the other's, and the install is
// recorded once.
func TestFleetFailoverChunked(t *testing.T) {
	img := newTestImage(t)
	// Contents that cut into distinct chunks, as a file system's do.
	r := rand.New(rand.NewPCG(3, 4))
	for i := 2 * mib; i < imageSize-2*mib; i++ {
		img.raw[i] = "rackboot \x00\x01usr/lib"[r.IntN(18)]
	}
	const n01 = "52:54:00:00:01:01"
	for _, peers := range []bool{false, true} {
		t.Run(fmt.Sprintf("peers %v", peers), func(t *testing.T) {
			var opts []func(*api.Server)
			if peers {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				port := ln.Addr().(*net.TCPAddr).Port
				ln.Close() // the agent listens on every address of it
				rec := &holdings{}
				opts = append(opts, func(s *api.Server) {
					pl := s.Planner.(profiles.Planner)
					pl.Peers = &agentapi.PeerSettings{Port: port}
					s.Planner, s.Peers = pl, rec
				})
			}
			var chunks atomic.Int64
			var aps []*appliance
			aps, _ = newChunkAppliances(t, img.raw, img.raw, 2, func(i int, h http.Handler) http.Handler {
				if i > 0 {
					return h
				}
				return &dying{h: h, ts: func() *httptest.Server { return aps[0].ts }, dead: make(chan struct{}),
					at: func(w http.ResponseWriter, r *http.Request, h http.Handler) bool {
						return strings.HasPrefix(r.URL.Path, "/artifacts/"+profiles.ChunkDir) && chunks.Add(1) == 3
					}}
			}, opts...)
			a, b := aps[0], aps[1]
			disk, disks := newTarget(t, targetSize)
			ag, screen := testAgent(t, a.url+","+b.url, n01, a.boot(n01, "n01"), disks)
			out, err := ag.attempt(context.Background())
			if err != nil || !out.Done || out.State != "installed" {
				t.Fatalf("attempt: %+v, %v\nconsole:\n%s", out, err, screen)
			}
			if chunks.Load() < 3 {
				t.Fatalf("A served %d chunk requests: it never died", chunks.Load())
			}
			checkInstalled(t, disk, img)
			if h := b.history(n01); len(h) != 1 || h[0].Result != registry.ResultSuccess {
				t.Fatalf("history %+v, want one successful attempt", h)
			}
			if !strings.Contains(screen.String(), "going on with "+b.url) {
				t.Errorf("console lacks the failover from A to B:\n%s", screen)
			}
		})
	}
}
