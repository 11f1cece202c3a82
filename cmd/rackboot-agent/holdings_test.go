package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
)

// fakeHoldings answers reports from a script of replies and records them.
type fakeHoldings struct {
	mu      sync.Mutex
	got     []agentapi.Holdings
	answers []func() (agentapi.HoldingsReply, error)
	onPost  func(n int) // called before answering report n (from 0)
}

func (f *fakeHoldings) post(ctx context.Context, h agentapi.Holdings) (agentapi.HoldingsReply, error) {
	f.mu.Lock()
	n := len(f.got)
	f.got = append(f.got, h)
	f.mu.Unlock()
	if f.onPost != nil {
		f.onPost(n)
	}
	if n < len(f.answers) {
		return f.answers[n]()
	}
	return agentapi.HoldingsReply{Serve: true, IntervalMS: 1}, nil
}

func serveEvery(ms int) func() (agentapi.HoldingsReply, error) {
	return func() (agentapi.HoldingsReply, error) {
		return agentapi.HoldingsReply{Serve: true, IntervalMS: ms}, nil
	}
}

// TestHoldingsReporter: each report carries the bitmap as it is then
// and the failures since the last one, each once; a failed report's
// failures go with the next; "serve: false" ends the reports.
func TestHoldingsReporter(t *testing.T) {
	held := imaging.NewHeldChunks(10)
	bad := agentapi.PeerFailure{Peer: "http://10.0.0.7:8090", Bad: true}
	slow := agentapi.PeerFailure{Peer: "http://10.0.0.8:8090"}
	var r *holdingsReporter
	f := &fakeHoldings{
		answers: []func() (agentapi.HoldingsReply, error){
			serveEvery(1),
			func() (agentapi.HoldingsReply, error) {
				return agentapi.HoldingsReply{}, errors.New("connection reset")
			},
			serveEvery(1),
			func() (agentapi.HoldingsReply, error) { return agentapi.HoldingsReply{Serve: false}, nil },
		},
		onPost: func(n int) {
			// Between reports the install goes on.
			switch n {
			case 0:
				held.Add(3)
				r.failure(bad)
				r.failure(bad)
			case 1:
				r.failure(slow)
			}
		},
	}
	held.Add(0)
	r = &holdingsReporter{post: f.post, image: "ab", port: 8090, held: held, minInterval: time.Millisecond}
	if err := r.run(t.Context()); !errors.Is(err, errStopServing) {
		t.Fatalf("run = %v, want errStopServing", err)
	}
	want := []agentapi.Holdings{
		{Image: "ab", Port: 8090, Have: agentapi.Bitmap{0x80, 0}},
		{Image: "ab", Port: 8090, Have: agentapi.Bitmap{0x90, 0}, Failed: []agentapi.PeerFailure{bad}},
		{Image: "ab", Port: 8090, Have: agentapi.Bitmap{0x90, 0}, Failed: []agentapi.PeerFailure{slow, bad}},
		{Image: "ab", Port: 8090, Have: agentapi.Bitmap{0x90, 0}},
	}
	if diff := cmp.Diff(want, f.got); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}

// TestHoldingsReporterStops: peer distribution off (404) or the token
// spent (401) ends the reports; so does the context, without error.
func TestHoldingsReporterStops(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusUnauthorized} {
		f := &fakeHoldings{answers: []func() (agentapi.HoldingsReply, error){
			func() (agentapi.HoldingsReply, error) { return agentapi.HoldingsReply{}, &apiError{Status: status} },
		}}
		r := &holdingsReporter{post: f.post, held: imaging.NewHeldChunks(1)}
		if err := r.run(t.Context()); !errors.Is(err, errStopServing) {
			t.Errorf("status %d: run = %v", status, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	f := &fakeHoldings{onPost: func(n int) {
		if n == 2 {
			cancel()
		}
	}}
	r := &holdingsReporter{post: f.post, held: imaging.NewHeldChunks(1), minInterval: time.Millisecond}
	if err := r.run(ctx); err != nil || len(f.got) != 3 {
		t.Errorf("run = %v after %d reports; want nil after 3", err, len(f.got))
	}
}

// TestClientHoldings: the report goes to the agent API path with the
// token, and the reply is decoded.
func TestClientHoldings(t *testing.T) {
	var got agentapi.Holdings
	var auth string
	c := testClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != agentapi.PathHoldings {
			http.NotFound(w, r)
			return
		}
		auth = r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got)
		w.Write([]byte(`{"serve":true,"interval_ms":2000}`))
	}))
	h := agentapi.Holdings{Image: "ab", Port: 8090, Have: agentapi.Bitmap{0x80}}
	reply, err := c.holdings(t.Context(), h)
	if err != nil || reply != (agentapi.HoldingsReply{Serve: true, IntervalMS: 2000}) {
		t.Fatalf("holdings = %+v, %v", reply, err)
	}
	if diff := cmp.Diff(h, got); diff != "" || auth != "Bearer "+testToken {
		t.Errorf("sent (-want +got):\n%s; Authorization %q", diff, auth)
	}
}
