package imaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPSource downloads an image over HTTP(S). Its Open method is an Opener:
// it asks for the rest of the file from an offset with a Range request
// (RFC 9110, 14.2) and checks that the server answered with exactly that.
// An HTTPSource must not be copied after first use.
type HTTPSource struct {
	// URL of the image file.
	URL string
	// Header is added to every request, e.g. the install token.
	Header http.Header
	// Client sends the requests. Nil means a client with connect, TLS
	// handshake and response header timeouts but no overall timeout,
	// which would cut any download longer than it; StallTimeout bounds
	// the body instead.
	Client *http.Client
	// StallTimeout aborts a response whose body yields no byte for this
	// long, so the download resumes on a fresh connection instead of
	// hanging on a dead one. Zero means 30 seconds.
	StallTimeout time.Duration

	once   sync.Once
	client *http.Client
}

func (s *HTTPSource) httpClient() *http.Client {
	s.once.Do(func() {
		s.client = s.Client
		if s.client == nil {
			s.client = newHTTPClient(0)
		}
	})
	return s.client
}

// newHTTPClient is the installer's client: connect, TLS handshake,
// response header and idle timeouts, no overall timeout (which would cut
// any download longer than it), and idle connections kept per host
// (0: the default two).
func newHTTPClient(idlePerHost int) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
		MaxIdleConnsPerHost:   idlePerHost,
		// Offsets count bytes of the file as stored; a transparently
		// gunzipped response would count something else.
		DisableCompression: true,
	}}
}

func (s *HTTPSource) Open(ctx context.Context, offset int64) (io.ReadCloser, error) {
	stall := s.StallTimeout
	if stall <= 0 {
		stall = 30 * time.Second
	}
	rctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, s.URL, nil)
	if err != nil {
		cancel()
		return nil, Permanent(fmt.Errorf("imaging: image request: %w", err))
	}
	for k, vs := range s.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Accept-Encoding", "identity")
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := s.httpClient().Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("imaging: GET image: %w", err)
	}
	size, err := checkResponse(resp, offset)
	if err != nil {
		resp.Body.Close()
		cancel()
		return nil, err
	}
	b := &httpBody{body: resp.Body, cancel: cancel, size: size, stall: stall}
	b.timer = time.AfterFunc(stall, func() {
		b.stalled.Store(true)
		cancel()
	})
	b.timer.Stop() // armed only while a Read waits
	return b, nil
}

// checkResponse validates the status and returns the file's total size (0
// if unknown). A server that ignores Range answers 200 with the whole file;
// reading it from the start would feed the decompressor twice, so it is a
// permanent error, as is a Content-Range not starting where we asked.
func checkResponse(resp *http.Response, offset int64) (int64, error) {
	switch code := resp.StatusCode; {
	case code == http.StatusOK && offset == 0:
		return max(resp.ContentLength, 0), nil
	case code == http.StatusOK:
		return 0, Permanent(fmt.Errorf("imaging: GET image from byte %d: server ignored the range request", offset))
	case code == http.StatusPartialContent:
		first, _, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return 0, Permanent(fmt.Errorf("imaging: GET image: %w", err))
		}
		if first != offset {
			return 0, Permanent(fmt.Errorf("imaging: GET image from byte %d: server sent bytes from %d", offset, first))
		}
		return max(total, 0), nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return 0, fmt.Errorf("imaging: GET image: %s", resp.Status)
	default:
		return 0, Permanent(fmt.Errorf("imaging: GET image: %s", resp.Status))
	}
}

// parseContentRange parses "bytes first-last/total" (RFC 9110, 14.4); total
// is -1 for "*".
func parseContentRange(h string) (first, last, total int64, err error) {
	bad := func() (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", h)
	}
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return bad()
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad()
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	if first, err = parseNonNeg(a); err != nil {
		return bad()
	}
	if last, err = parseNonNeg(b); err != nil || last < first {
		return bad()
	}
	if tot == "*" {
		return first, last, -1, nil
	}
	if total, err = parseNonNeg(tot); err != nil || total <= last {
		return bad()
	}
	return first, last, total, nil
}

func parseNonNeg(s string) (int64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, errors.New("not a non-negative integer")
	}
	return strconv.ParseInt(s, 10, 64)
}

// httpBody is a response body with a stall timer. The timer runs only
// while a Read waits, so a consumer that pauses (buffers full behind a slow
// disk) is not mistaken for a dead server; when it fires the request is
// cancelled, the Read fails and the resumer reconnects.
type httpBody struct {
	body    io.ReadCloser
	cancel  context.CancelFunc
	timer   *time.Timer
	stall   time.Duration
	stalled atomic.Bool
	size    int64
}

func (b *httpBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.stall)
	n, err := b.body.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF && b.stalled.Load() {
		err = fmt.Errorf("imaging: no data for %v: %w", b.stall, err)
	}
	return n, err
}

// Size returns the total size of the file, 0 if the server did not say.
func (b *httpBody) Size() int64 { return b.size }

func (b *httpBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel()
	return err
}
