package artifacts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// syncBuffer is a log sink the server's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// kernel is a test artifact big enough for ranges to mean something.
var kernel = bytes.Repeat([]byte("0123456789abcdef"), 4096)

type fixture struct {
	srv    *httptest.Server
	dir    string
	logs   *syncBuffer
	mu     sync.Mutex
	served []Served
}

func (fx *fixture) calls() []Served {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return append([]Served(nil), fx.served...)
}

// newFixture serves a directory holding vmlinuz, a subdirectory, a symbolic
// link inside and one leading out, under /artifacts/ on a loopback socket.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	top := t.TempDir()
	dir := filepath.Join(top, "artifacts")
	for _, d := range []string{dir, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{
		filepath.Join(dir, "vmlinuz"):        kernel,
		filepath.Join(dir, "sub", "a.txt"):   []byte("hello\n"),
		filepath.Join(top, "secret"):         []byte("outside the root\n"),
		filepath.Join(dir, "sub", "initrd"):  []byte("initrd"),
		filepath.Join(dir, "..file-is-fine"): []byte("dots"),
	}
	for name, b := range files {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		filepath.Join(dir, "current"):     "vmlinuz",
		filepath.Join(dir, "escape"):      "../secret",
		filepath.Join(dir, "absolute"):    filepath.Join(top, "secret"),
		filepath.Join(dir, "sub", "up"):   "../../secret",
		filepath.Join(dir, "dirlink"):     "sub",
		filepath.Join(dir, "dangling"):    "nowhere",
		filepath.Join(dir, "outside-dir"): top,
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	fx := &fixture{dir: dir, logs: &syncBuffer{}}
	h := &Handler{
		Dir:    dir,
		Prefix: "/artifacts/",
		Log:    slog.New(slog.NewTextHandler(fx.logs, nil)),
		OnServe: func(s Served) {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			fx.served = append(fx.served, s)
		},
	}
	fx.srv = httptest.NewServer(h)
	t.Cleanup(fx.srv.Close)
	return fx
}

func (fx *fixture) do(t *testing.T, method, path string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, fx.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestServe(t *testing.T) {
	fx := newFixture(t)
	fi, err := os.Stat(filepath.Join(fx.dir, "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	tag := etag(fi)
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantBody   []byte
		wantHeader map[string]string
	}{
		{"full GET", "GET", "/artifacts/vmlinuz", nil, 200, kernel,
			map[string]string{"Content-Length": fmt.Sprint(len(kernel)), "Content-Type": "application/octet-stream", "ETag": tag, "Accept-Ranges": "bytes"}},
		{"GET with mac", "GET", "/artifacts/vmlinuz?mac=52-54-00-00-01-01", nil, 200, kernel, nil},
		{"text file", "GET", "/artifacts/sub/a.txt", nil, 200, []byte("hello\n"),
			map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{"symlink inside the root", "GET", "/artifacts/current", nil, 200, kernel, nil},
		{"range", "GET", "/artifacts/vmlinuz", map[string]string{"Range": "bytes=16-47"}, 206, kernel[16:48],
			map[string]string{"Content-Range": fmt.Sprintf("bytes 16-47/%d", len(kernel)), "Content-Length": "32"}},
		{"suffix range", "GET", "/artifacts/vmlinuz", map[string]string{"Range": "bytes=-10"}, 206, kernel[len(kernel)-10:], nil},
		{"unsatisfiable range", "GET", "/artifacts/vmlinuz", map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(kernel)+1)}, 416, nil, nil},
		{"if-range matching", "GET", "/artifacts/vmlinuz", map[string]string{"Range": "bytes=0-3", "If-Range": tag}, 206, kernel[:4], nil},
		{"if-range stale", "GET", "/artifacts/vmlinuz", map[string]string{"Range": "bytes=0-3", "If-Range": `"stale"`}, 200, kernel, nil},
		{"if-none-match", "GET", "/artifacts/vmlinuz", map[string]string{"If-None-Match": tag}, 304, nil,
			map[string]string{"ETag": tag}},
		{"if-none-match stale", "GET", "/artifacts/vmlinuz", map[string]string{"If-None-Match": `"stale"`}, 200, kernel, nil},
		{"if-modified-since", "GET", "/artifacts/vmlinuz",
			map[string]string{"If-Modified-Since": fi.ModTime().Add(time.Second).UTC().Format(http.TimeFormat)}, 304, nil, nil},
		{"HEAD", "HEAD", "/artifacts/vmlinuz", nil, 200, nil,
			map[string]string{"Content-Length": fmt.Sprint(len(kernel)), "ETag": tag}},
		{"POST", "POST", "/artifacts/vmlinuz", nil, 405, []byte("method not allowed\n"), map[string]string{"Allow": "GET, HEAD"}},
		{"PUT", "PUT", "/artifacts/new", nil, 405, []byte("method not allowed\n"), nil},
		{"missing", "GET", "/artifacts/nothing", nil, 404, []byte("404 page not found\n"), nil},
		{"file as directory", "GET", "/artifacts/vmlinuz/x", nil, 404, []byte("404 page not found\n"), nil},
		{"dangling symlink", "GET", "/artifacts/dangling", nil, 404, []byte("404 page not found\n"), nil},
		{"outside the prefix", "GET", "/other/vmlinuz", nil, 404, []byte("404 page not found\n"), nil},
		{"name starting with dots", "GET", "/artifacts/..file-is-fine", nil, 200, []byte("dots"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := fx.do(t, tt.method, tt.path, tt.header)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("body: got %d bytes %.40q, want %d bytes %.40q", len(body), body, len(tt.wantBody), tt.wantBody)
			}
			if tt.wantBody == nil && len(body) != 0 && tt.wantStatus != 416 {
				t.Errorf("body: got %d bytes, want none", len(body))
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestEscapes asks for everything outside the directory, and the directories
// themselves, every way a client might.
func TestEscapes(t *testing.T) {
	fx := newFixture(t)
	paths := []string{
		"/artifacts/",
		"/artifacts/sub",
		"/artifacts/sub/",
		"/artifacts/dirlink",
		"/artifacts/../secret",
		"/artifacts/%2e%2e/secret",
		"/artifacts/sub/../../secret",
		"/artifacts/sub/%2e%2e/%2e%2e/secret",
		"/artifacts/..%2fsecret",
		"/artifacts/%2fetc/passwd",
		"/artifacts//etc/passwd",
		"/artifacts/escape",
		"/artifacts/absolute",
		"/artifacts/sub/up",
		"/artifacts/outside-dir/secret",
		"/artifacts/vmlinuz%00.txt",
		"/artifacts/./vmlinuz",
		"/artifacts/sub/./a.txt",
		"/artifacts/sub//a.txt",
		"/artifacts/.",
		"/artifacts/..",
		"/artifacts/...",
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			// A raw request, so the client library cleans nothing.
			conn, err := net.Dial("tcp", strings.TrimPrefix(fx.srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", p); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(conn)
			if err != nil {
				t.Fatal(err)
			}
			resp := string(b)
			if !strings.HasPrefix(resp, "HTTP/1.1 404 ") && !strings.HasPrefix(resp, "HTTP/1.1 400 ") {
				t.Errorf("GET %s: want 404 (or the server's 400), got:\n%s", p, resp)
			}
			for _, leak := range []string{"outside the root", "hello", "a.txt", "root:"} {
				if strings.Contains(resp, leak) {
					t.Errorf("GET %s leaks %q:\n%s", p, leak, resp)
				}
			}
		})
	}
	for _, want := range []string{"path=escape status=404", "path=absolute status=404", "path=sub/up status=404"} {
		if !strings.Contains(fx.logs.String(), want) {
			t.Errorf("log lacks %q; log:\n%s", want, fx.logs)
		}
	}
	if strings.Contains(fx.logs.String(), "status=500") {
		t.Errorf("an escape was a server error, not a 404; log:\n%s", fx.logs)
	}
}

func TestLogAndHook(t *testing.T) {
	fx := newFixture(t)
	fx.do(t, "GET", "/artifacts/vmlinuz?mac=52-54-00-00-01-01", map[string]string{"Range": "bytes=0-99"})
	fx.do(t, "GET", "/artifacts/sub/a.txt?mac=%24%7Bx%7D", nil)
	fx.do(t, "GET", "/artifacts/nothing", nil)

	logs := fx.logs.String()
	for _, want := range []string{
		`level=INFO msg="artifact request" path=vmlinuz status=206 bytes=100 duration=`,
		`ip=127.0.0.1 range="bytes=0-99" mac=52:54:00:00:01:01`,
		`level=INFO msg="artifact request" path=sub/a.txt status=200 bytes=6 duration=`,
		`level=WARN msg="artifact request" path=nothing status=404 bytes=19 duration=`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q; log:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "${x}") || strings.Count(logs, "mac=") != 1 {
		t.Errorf("an invalid ?mac= reached the log:\n%s", logs)
	}
	if n := strings.Count(logs, "\n"); n != 3 {
		t.Errorf("%d log lines for 3 requests:\n%s", n, logs)
	}

	got := fx.calls()
	for i := range got {
		if got[i].Duration <= 0 {
			t.Errorf("call %d: duration %v", i, got[i].Duration)
		}
		got[i].Duration = 0
	}
	lo := netip.MustParseAddr("127.0.0.1")
	want := []Served{
		{Path: "vmlinuz", MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 1, 1}, Status: 206, Bytes: 100, Remote: lo},
		{Path: "sub/a.txt", Status: 200, Bytes: 6, Remote: lo},
		{Path: "nothing", Status: 404, Bytes: 19, Remote: lo},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("OnServe calls mismatch (-want +got):\n%s", diff)
	}
}

func TestIdentify(t *testing.T) {
	known := net.HardwareAddr{0x52, 0x54, 0, 0, 2, 2}
	logs := &syncBuffer{}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ipxe.efi"), []byte("MZ"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&Handler{
		Dir:    dir,
		Prefix: "/nbp",
		Log:    slog.New(slog.NewTextHandler(logs, nil)),
		Identify: func(ip netip.Addr) net.HardwareAddr {
			if ip == netip.MustParseAddr("127.0.0.1") {
				return known
			}
			return nil
		},
	})
	defer srv.Close()
	for _, q := range []string{"", "?mac=52:54:00:00:03:03"} {
		resp, err := http.Get(srv.URL + "/nbp/ipxe.efi" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	for _, want := range []string{"path=ipxe.efi status=200 bytes=2", "mac=52:54:00:00:02:02", "mac=52:54:00:00:03:03"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q; log:\n%s", want, logs)
		}
	}
}

func TestETagChangesWithFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	stat := func() os.FileInfo {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if err := os.WriteFile(name, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := stat()
	// Same size and modification time, new inode: a file renamed into place.
	tmp := filepath.Join(dir, "f.new")
	if err := os.WriteFile(tmp, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, first.ModTime(), first.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
	second := stat()
	if etag(first) == etag(second) {
		t.Errorf("same ETag %s for a replaced file", etag(first))
	}
	if !strings.HasPrefix(etag(first), `"`) || strings.HasPrefix(etag(first), `W/`) {
		t.Errorf("ETag %s is not a strong tag", etag(first))
	}
}

func TestMissingDir(t *testing.T) {
	srv := httptest.NewServer(&Handler{Dir: filepath.Join(t.TempDir(), "gone")})
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status %d, want 500: a missing directory is a storage failure, not a missing file", resp.StatusCode)
	}
}
