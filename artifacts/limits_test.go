package artifacts

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLongPath reproduces issue 13's defect 8, first half: a 900 KB path
// reached the file system (ENAMETOOLONG, a 500) and the log at full
// length. It is now 414 before any system call, and its log line is short.
func TestLongPath(t *testing.T) {
	fx := newFixture(t)
	long := strings.Repeat("a", 900_000)
	tests := []struct {
		name string
		path string
		want int
	}{
		{"900 KB path", "/artifacts/" + long, http.StatusRequestURITooLong},
		{"just over the name limit", "/artifacts/sub/" + strings.Repeat("a/", maxName/2), http.StatusRequestURITooLong},
		{"element over NAME_MAX", "/artifacts/" + strings.Repeat("b", 256), http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fx.logs.String())
			resp, body := fx.do(t, "GET", tt.path, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tt.want)
			}
			line := fx.logs.String()[before:]
			if len(line) > 2*maxLogged+300 {
				t.Errorf("log line of %d bytes for a %d-byte path:\n%.400s", len(line), len(tt.path), line)
			}
			if len(tt.path) > maxLogged && !strings.Contains(line, fmt.Sprintf("(%d bytes)", len(tt.path)-len("/artifacts/"))) &&
				!strings.Contains(line, fmt.Sprintf("(%d bytes)", len(tt.path))) {
				t.Errorf("log line does not give the path's length:\n%.400s", line)
			}
		})
	}
}

// TestManyRanges reproduces issue 13's defect 8, second half: a Range
// header of many small ranges made a multipart response about twelve times
// the header's size. More than maxRanges ranges, or overlapping ones, now
// get a short 416; a few ranges still get their multipart answer.
func TestManyRanges(t *testing.T) {
	fx := newFixture(t)
	var many strings.Builder
	many.WriteString("bytes=0-0")
	for i := 2; many.Len() < 60_000; i += 2 {
		fmt.Fprintf(&many, ",%d-%d", i, i)
	}
	tests := []struct {
		name    string
		rng     string
		want    int
		maxBody int
	}{
		{"thousands of one-byte ranges", many.String(), http.StatusRequestedRangeNotSatisfiable, 100},
		{"overlapping", "bytes=0-99,50-149", http.StatusRequestedRangeNotSatisfiable, 100},
		{"suffix overlapping", "bytes=0-,-10", http.StatusRequestedRangeNotSatisfiable, 100},
		{"the same range twice", "bytes=5-9,5-9", http.StatusRequestedRangeNotSatisfiable, 100},
		{"maxRanges ranges", "bytes=0-0" + strings.Repeat(",x", 0) + ranges(1, maxRanges-1), http.StatusPartialContent, 10_000},
		{"one range over", "bytes=0-0" + ranges(1, maxRanges), http.StatusRequestedRangeNotSatisfiable, 100},
		{"one range (resume)", "bytes=100-", http.StatusPartialContent, len(kernel)},
		{"suffix", "bytes=-10", http.StatusPartialContent, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := fx.do(t, "GET", "/artifacts/vmlinuz", map[string]string{"Range": tt.rng})
			if resp.StatusCode != tt.want || len(body) > tt.maxBody {
				t.Fatalf("Range of %d bytes: status %d, %d-byte body; want %d, at most %d bytes", len(tt.rng), resp.StatusCode, len(body), tt.want, tt.maxBody)
			}
			if tt.want == http.StatusRequestedRangeNotSatisfiable {
				if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes */%d", len(kernel)); got != want {
					t.Errorf("Content-Range %q, want %q", got, want)
				}
			}
		})
	}
}

// ranges is ",2-2,4-4,…": n more disjoint one-byte ranges after 0-0.
func ranges(from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, ",%d-%d", 2*i, 2*i)
	}
	return b.String()
}

// TestStalledClient: a client that asks for a large file and never reads
// is dropped one StallTimeout after its socket buffers filled, and its file
// closed; the request was held open for good before (issue 13, defect 3).
func TestStalledClient(t *testing.T) {
	dir := t.TempDir()
	const size = 256 << 20 // far beyond loopback's socket buffers; sparse
	f, err := os.Create(filepath.Join(dir, "image.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	served := make(chan Served, 1)
	const stall = 300 * time.Millisecond
	srv := httptest.NewServer(&Handler{Dir: dir, Prefix: "/artifacts/", StallTimeout: stall,
		Log: slog.New(slog.DiscardHandler), OnServe: func(s Served) { served <- s }})
	t.Cleanup(srv.Close)

	// A small receive buffer, set before connecting, keeps the window small.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "GET /artifacts/image.raw HTTP/1.1\r\nHost: x\r\n\r\n")

	var s Served
	select {
	case s = <-served:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler still runs 30 s after its client stopped reading")
	}
	took := time.Since(start)
	t.Logf("dropped after %v having sent %d of %d bytes", took.Round(time.Millisecond), s.Bytes, size)
	if s.Bytes >= size || took < stall {
		t.Errorf("handler ended after %v with %d of %d bytes sent; want a cut transfer after at least %v", took, s.Bytes, size, stall)
	}
	// The connection is closed: reading what is buffered ends early.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, bufio.NewReader(conn))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after the handler gave up (%d bytes read)", n)
	}
	if n >= size {
		t.Errorf("read %d bytes, the whole file", n)
	}
}
