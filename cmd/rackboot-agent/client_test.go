package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

// request is what a fake appliance received.
type request struct {
	Method, Path, Auth, MAC, ContentType string
	Body                                 string
}

// recorder answers every request with the status and body given for its
// path (200 {} by default) and records it.
type recorder struct {
	mu       sync.Mutex
	requests []request
	answers  map[string]func() (int, string)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, request{r.Method, r.URL.Path, r.Header.Get("Authorization"),
		r.Header.Get(agentapi.MACHeader), r.Header.Get("Content-Type"), string(b)})
	answer := rec.answers[r.URL.Path]
	rec.mu.Unlock()
	code, body := http.StatusOK, "{}"
	if answer != nil {
		code, body = answer()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	io.WriteString(w, body)
}

func (rec *recorder) got() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]request(nil), rec.requests...)
}

func testClient(t *testing.T, h http.Handler) *client {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	u, _ := url.Parse(ts.URL)
	mac, _ := net.ParseMAC("52:54:00:00:01:01")
	return newClient(config{Servers: []*url.URL{u}, MAC: mac, Token: testToken}, nil, slog.New(slog.DiscardHandler))
}

func TestClientRequests(t *testing.T) {
	rec := &recorder{answers: map[string]func() (int, string){
		"/api/agent/plan": func() (int, string) {
			return 200, `{"host":"n01","mac":"52:54:00:00:01:01","attempt":2,"attempt_id":7,"version":{"name":"v1","number":1},
				"plan":{"disk":{"select":"smallest","min_size":"1GiB"},"image":{"url":"http://x/i.zst","sha256":"ab","format":"zstd"}}}`
		},
		"/api/agent/done":   func() (int, string) { return 200, `{"state":"installed","attempt":2}` },
		"/api/agent/failed": func() (int, string) { return 200, `{"state":"pending","attempt":2,"reason":"retrying"}` },
		"/api/agent/log":    func() (int, string) { return 204, "" },
	}}
	c := testClient(t, rec)
	ctx := context.Background()

	p, err := c.plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Host != "n01" || p.Attempt != 2 || p.Version.Name != "v1" || p.Plan.Disk.MinSize != 1<<30 || p.Plan.Image.Format != "zstd" {
		t.Errorf("plan decoded as %+v", p)
	}
	if err := c.progress(ctx, agentapi.Progress{Phase: "image", Done: 1, Total: 2, Rate: 3.5}); err != nil {
		t.Fatal(err)
	}
	if err := c.log(ctx, agentapi.Log{Lines: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	r, err := c.done(ctx, agentapi.Done{SHA256: "ab", Bytes: 5, DurationMS: 6})
	if err != nil || r.State != "installed" {
		t.Fatalf("done: %+v, %v", r, err)
	}
	r, err = c.failed(ctx, agentapi.Failed{Error: "boom", Phase: "image"})
	if err != nil || r.State != "pending" || r.Reason != "retrying" {
		t.Fatalf("failed: %+v, %v", r, err)
	}

	auth, mac, js := "Bearer "+testToken, "52:54:00:00:01:01", "application/json"
	want := []request{
		{"GET", "/api/agent/plan", auth, mac, "", ""},
		{"POST", "/api/agent/progress", auth, mac, js, `{"phase":"image","done":1,"total":2,"rate":3.5}`},
		{"POST", "/api/agent/log", auth, mac, js, `{"lines":["a","b"]}`},
		{"POST", "/api/agent/done", auth, mac, js, `{"sha256":"ab","bytes":5,"duration_ms":6}`},
		{"POST", "/api/agent/failed", auth, mac, js, `{"error":"boom","phase":"image"}`},
	}
	if diff := cmp.Diff(want, rec.got()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestClientErrors(t *testing.T) {
	for _, tt := range []struct {
		name         string
		status       int
		body         string
		wantMsg      string
		unauthorized bool
		retryable    bool
	}{
		{"401", 401, `{"error":"invalid or expired install token"}`, "invalid or expired install token", true, false},
		{"409 no plan", 409, `{"error":"version \"x\" is not in the catalog"}`, `version "x" is not in the catalog`, false, false},
		{"400", 400, `{"error":"phase: missing"}`, "phase: missing", false, false},
		{"429", 429, ``, "Too Many Requests", false, true},
		{"500", 500, `{"error":"registry unavailable"}`, "registry unavailable", false, true},
		{"502 from a proxy, not JSON", 502, `<html>bad gateway</html>`, "Bad Gateway", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := testClient(t, &recorder{answers: map[string]func() (int, string){
				"/api/agent/plan": func() (int, string) { return tt.status, tt.body },
			}})
			_, err := c.plan(context.Background())
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is no *apiError", err)
			}
			if ae.Status != tt.status || ae.Msg != tt.wantMsg {
				t.Errorf("apiError %d %q, want %d %q", ae.Status, ae.Msg, tt.status, tt.wantMsg)
			}
			if unauthorized(err) != tt.unauthorized || retryable(err) != tt.retryable {
				t.Errorf("unauthorized %v retryable %v, want %v %v", unauthorized(err), retryable(err), tt.unauthorized, tt.retryable)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		ts := httptest.NewServer(http.NotFoundHandler())
		u, _ := url.Parse(ts.URL)
		ts.Close()
		c := newClient(config{Servers: []*url.URL{u}, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Token: "t"}, nil, slog.New(slog.DiscardHandler))
		_, err := c.plan(context.Background())
		if err == nil || !retryable(err) || unauthorized(err) {
			t.Errorf("plan from a closed port: %v (retryable %v), want a retryable error", err, retryable(err))
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		c := testClient(t, &recorder{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.plan(ctx); err == nil || retryable(err) {
			t.Errorf("plan with a cancelled context: %v, want an error not retried", err)
		}
	})
	t.Run("malformed plan", func(t *testing.T) {
		c := testClient(t, &recorder{answers: map[string]func() (int, string){
			"/api/agent/plan": func() (int, string) { return 200, `{"plan":{"disk":{"min_size":"lots"}}}` },
		}})
		if _, err := c.plan(context.Background()); err == nil {
			t.Error("a plan with a bad size was accepted")
		}
	})
}

func TestSameOrigin(t *testing.T) {
	u, _ := url.Parse("http://192.0.2.1:8080")
	for raw, want := range map[string]bool{
		"http://192.0.2.1:8080/artifacts/os.img.zst?mac=x": true,
		"HTTP://192.0.2.1:8080/x":                          true,
		"http://192.0.2.1:8081/x":                          false,
		"https://192.0.2.1:8080/x":                         false,
		"http://mirror.example.com/os.img":                 false,
		"http://192.0.2.1:8080@evil.example.com/x":         false,
		"::bad": false,
	} {
		if got := sameOrigin(raw, u); got != want {
			t.Errorf("sameOrigin(%q) = %v, want %v", raw, got, want)
		}
	}
}

// The wire structs must marshal to exactly the API's field names.
func TestWireNames(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{agentapi.Progress{Phase: "image"}, `{"phase":"image","done":0,"total":0,"rate":0}`},
		{agentapi.Done{}, `{"sha256":"","bytes":0,"duration_ms":0}`},
		{agentapi.Failed{Error: "e"}, `{"error":"e"}`},
		{agentapi.Log{Lines: []string{}}, `{"lines":[]}`},
	} {
		b, err := json.Marshal(tt.v)
		if err != nil || string(b) != tt.want {
			t.Errorf("%T marshals to %s (%v), want %s", tt.v, b, err, tt.want)
		}
	}
}
