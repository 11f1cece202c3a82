package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInstrument(t *testing.T) {
	m := New(Options{})
	mux := http.NewServeMux()
	mux.Handle("/ok", m.Instrument("api", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hello")
	})))
	mux.Handle("/silent", m.Instrument("api", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	mux.Handle("/missing", m.Instrument("artifacts", http.NotFoundHandler()))
	// A stream flushes through a ResponseController and lifts its write
	// deadline, as /api/events does: both must reach the real writer.
	mux.Handle("/stream", m.Instrument("api", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Time{}); err != nil {
			t.Errorf("SetWriteDeadline through Instrument: %v", err)
		}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "first\n")
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush through Instrument: %v", err)
		}
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the wrapped writer is no http.Flusher")
		}
	})))
	ts := httptest.NewServer(mux)
	defer ts.Close()

	for _, p := range []string{"/ok", "/ok", "/silent", "/missing", "/stream"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		// The whole body: its end is sent after the handler returned,
		// so after the request was counted.
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if p == "/stream" && string(body) != "first\n" {
			t.Errorf("stream: got %q", body)
		}
	}
	want := `
# HELP rackboot_http_requests_total HTTP requests answered, by handler (api, ipxe, artifacts, chunks, nbp, ...) and status code.
# TYPE rackboot_http_requests_total counter
rackboot_http_requests_total{code="200",handler="api"} 3
rackboot_http_requests_total{code="202",handler="api"} 1
rackboot_http_requests_total{code="404",handler="artifacts"} 1
# HELP rackboot_http_sent_bytes_total HTTP response body bytes sent, by handler.
# TYPE rackboot_http_sent_bytes_total counter
rackboot_http_sent_bytes_total{handler="api"} 16
rackboot_http_sent_bytes_total{handler="artifacts"} 19
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "rackboot_http_requests_total", "rackboot_http_sent_bytes_total"); err != nil {
		t.Error(err)
	}
}
