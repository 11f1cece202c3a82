package imaging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

// imageServer serves one image file with http.ServeContent (which handles
// Range requests), except that the first `failFirst` responses are broken
// by breakFn. It records the Range header of every request.
type imageServer struct {
	t       *testing.T
	file    []byte
	token   string
	breakFn func(w http.ResponseWriter, r *http.Request) // nil: never break
	breaks  int

	mu     sync.Mutex
	ranges []string
}

func (s *imageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	n := len(s.ranges)
	s.mu.Unlock()
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		http.Error(w, "no token", http.StatusUnauthorized)
		return
	}
	if s.breakFn != nil && n <= s.breaks {
		s.breakFn(w, r)
		return
	}
	http.ServeContent(w, r, "os.img.zst", time.Unix(0, 0), bytes.NewReader(s.file))
}

func (s *imageServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// cutAfter answers with the full Content-Length, sends n bytes of the
// requested range and drops the connection: a download cut mid-stream.
func cutAfter(t *testing.T, file []byte, n int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(file))
		buf.Write(file[:n])
		buf.Flush()
	}
}

func TestHTTPResumesCutDownload(t *testing.T) {
	img := pattern(4<<20, 8)
	file := compress(t, agentapi.FormatZstd, img)
	cut := len(file) / 3
	srv := &imageServer{t: t, file: file, token: "s3cret", breaks: 1}
	srv.breakFn = cutAfter(t, file, cut)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	src := &HTTPSource{URL: ts.URL + "/os.img.zst", Header: http.Header{"Authorization": {"Bearer s3cret"}}}
	opt := quickOptions(t, file)
	dst := fileTarget(t, 0)
	res, err := Stream(context.Background(), src.Open, dst, opt)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"", fmt.Sprintf("bytes=%d-", cut)}, srv.seen()); diff != "" {
		t.Errorf("Range headers (-want +got):\n%s", diff)
	}
	if res.Resumes != 1 || res.Received != int64(len(file)) || res.SHA256 != sha256Hex(file) {
		t.Errorf("result = %+v", res)
	}
	got := make([]byte, len(img))
	if _, err := dst.ReadAt(got, 0); err != nil || !bytes.Equal(got, img) {
		t.Errorf("written image differs (%v)", err)
	}
}

func TestHTTPResumesStalledDownload(t *testing.T) {
	file := compress(t, agentapi.FormatGzip, pattern(1<<20, 9))
	srv := &imageServer{t: t, file: file, breaks: 1}
	srv.breakFn = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(file)))
		w.Write(file[:1000])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // hang until the client gives up
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	src := &HTTPSource{URL: ts.URL, StallTimeout: 100 * time.Millisecond}
	res, err := Stream(context.Background(), src.Open, fileTarget(t, 0), quickOptions(t, file))
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumes != 1 || !cmp.Equal(srv.seen(), []string{"", "bytes=1000-"}) {
		t.Errorf("resumes %d, ranges %q", res.Resumes, srv.seen())
	}
}

func TestHTTPSourceResponses(t *testing.T) {
	file := []byte("0123456789abcdef")
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		offset    int64
		want      string // body read, when no error
		wantSize  int64
		permanent bool // when an error is expected
		wantErr   string
	}{
		{name: "full", offset: 0, want: string(file), wantSize: 16, handler: serve(file)},
		{name: "range", offset: 10, want: "abcdef", wantSize: 16, handler: serve(file)},
		{name: "range ignored", offset: 10, permanent: true, wantErr: "ignored the range", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(file)
		}},
		{name: "wrong range start", offset: 10, permanent: true, wantErr: "from 8", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 8-15/16")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(file[8:])
		}},
		{name: "bad content range", offset: 10, permanent: true, wantErr: "Content-Range", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 10-")
			w.WriteHeader(http.StatusPartialContent)
		}},
		{name: "not found", permanent: true, wantErr: "404", handler: http.NotFound},
		{name: "unauthorized", permanent: true, wantErr: "401", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "token", http.StatusUnauthorized)
		}},
		{name: "range past end", offset: 99, permanent: true, wantErr: "416", handler: serve(file)},
		{name: "busy", wantErr: "503", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "later", http.StatusServiceUnavailable)
		}},
		{name: "gzip not requested", want: string(file), wantSize: 16, handler: func(w http.ResponseWriter, r *http.Request) {
			if ae := r.Header.Get("Accept-Encoding"); ae != "identity" {
				http.Error(w, "Accept-Encoding "+ae, http.StatusBadRequest)
				return
			}
			serve(file)(w, r)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			defer ts.Close()
			src := &HTTPSource{URL: ts.URL}
			rc, err := src.Open(context.Background(), tt.offset)
			if tt.wantErr != "" {
				if err == nil {
					rc.Close()
					t.Fatal("Open succeeded, want error")
				}
				if isPermanent(err) != tt.permanent || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open() = %v (permanent %v), want %q (permanent %v)", err, isPermanent(err), tt.wantErr, tt.permanent)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil || string(got) != tt.want {
				t.Fatalf("body = %q, %v; want %q", got, err, tt.want)
			}
			if s := rc.(interface{ Size() int64 }).Size(); s != tt.wantSize {
				t.Errorf("Size() = %d, want %d", s, tt.wantSize)
			}
		})
	}
}

func serve(file []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Unix(0, 0), bytes.NewReader(file))
	}
}

func TestHTTPSourceConnectionRefused(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	_, err := (&HTTPSource{URL: url}).Open(context.Background(), 0)
	if err == nil || isPermanent(err) {
		t.Fatalf("Open() = %v, want a retryable error", err)
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                 string
		first, last, total int64
		wantErr            bool
	}{
		{in: "bytes 0-99/100", first: 0, last: 99, total: 100},
		{in: "bytes 100-199/*", first: 100, last: 199, total: -1},
		{in: "bytes 5-5/6", first: 5, last: 5, total: 6},
		{in: "bytes */100", wantErr: true},
		{in: "bytes 10-5/100", wantErr: true},
		{in: "bytes 0-99/99", wantErr: true},
		{in: "bytes -1-5/10", wantErr: true},
		{in: "bytes +1-5/10", wantErr: true},
		{in: "items 0-1/2", wantErr: true},
		{in: "bytes 0-1", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			first, last, total, err := parseContentRange(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && (first != tt.first || last != tt.last || total != tt.total) {
				t.Errorf("= %d, %d, %d; want %d, %d, %d", first, last, total, tt.first, tt.last, tt.total)
			}
		})
	}
}

// FuzzParseContentRange: the header comes from the network.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 1-2/*", "bytes */5", "bytes 9223372036854775807-9223372036854775807/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, err := parseContentRange(s)
		if err != nil {
			return
		}
		if first < 0 || last < first || (total != -1 && total <= last) {
			t.Fatalf("parseContentRange(%q) = %d, %d, %d", s, first, last, total)
		}
	})
}
