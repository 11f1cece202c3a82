package artifacts

import (
	"io"
	"net/http"
	"time"
)

// countingWriter records the status and the body bytes of a response, for
// the log, and gives every write a fresh deadline of stall, so a response
// may take as long as it needs while its client keeps reading. It keeps
// the underlying writer's io.ReaderFrom, so large files still go out with
// sendfile(2), in chunks of at most chunk bytes, each with its deadline.
type countingWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	code  int
	n     int64
}

// chunk is the most one sendfile(2) call may send under one write
// deadline: at 1 MiB a stall timeout of a minute only cuts a client slower
// than about 17 KB/s.
const chunk = 1 << 20

// extend moves the write deadline stall into the future. Writers that
// cannot (a test's recorder) are left as they are.
func (w *countingWriter) extend() {
	if w.rc != nil && w.stall > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	}
}

func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		w.extend()
		n, err := io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
		w.n += n
		return n, err
	}
	// http.ServeContent hands over the file in an io.LimitedReader, and
	// the socket uses sendfile(2) only for a file or one LimitedReader of
	// a file: so the chunks are cut from that reader, never wrapped in
	// another.
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		lr = &io.LimitedReader{R: r, N: 1<<63 - 1}
	}
	var total int64
	for lr.N > 0 {
		part := &io.LimitedReader{R: lr.R, N: min(lr.N, chunk)}
		w.extend()
		n, err := rf.ReadFrom(part)
		lr.N -= n
		total += n
		w.n += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			break // the end of the file
		}
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *countingWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
