package metrics

import (
	"net/http"
)

// Instrument counts the requests h answers as handler class (its status
// code and body bytes) when each ends; a stream such as /api/events is
// counted when it closes.
func (m *Metrics) Instrument(handler string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		m.HTTPRequest(handler, sw.status(), sw.n)
	})
}

// statusWriter records the status and counts the body. It unwraps for
// http.ResponseController, so that handlers that stream (flush, lift the
// write deadline) work through it.
type statusWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code // 1xx are interim; the final status follows
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Flush serves handlers that assert http.Flusher rather than use a
// ResponseController.
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK // the handler wrote nothing: net/http sends 200
	}
	return w.code
}
