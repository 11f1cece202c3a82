package imaging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// ChunkStore is where an Installer gets a chunked image: its index and
// the seed's, and the chunks. HTTPChunks is the agent's.
type ChunkStore interface {
	ChunkSource
	// Index reads the index at url.
	Index(ctx context.Context, url string) (*chunkstore.Index, error)
}

// HTTPChunks fetches indexes and chunks from the appliance over
// HTTP(S), each chunk with its own GET on a few kept-alive connections.
// An HTTPChunks must not be copied after first use.
type HTTPChunks struct {
	// Base is the chunk store's URL (the plan's Image.Chunks).
	Base string
	// Header is added to every request, e.g. the install token.
	Header http.Header
	// Client sends the requests; nil means one with connect, header and
	// idle timeouts and room for 32 idle connections to the appliance.
	Client *http.Client
	// Timeout bounds one request, body included. Default 60 s.
	Timeout time.Duration

	once   sync.Once
	client *http.Client
}

func (s *HTTPChunks) httpClient() *http.Client {
	s.once.Do(func() {
		s.client = s.Client
		if s.client == nil {
			s.client = newHTTPClient(32)
		}
	})
	return s.client
}

// Fetch gets chunk id's stored bytes.
func (s *HTTPChunks) Fetch(ctx context.Context, id chunkstore.ChunkID, stored int64) ([]byte, error) {
	return s.get(ctx, agentapi.ChunkURL(s.Base, id.String()), stored, 2*chunkstore.MaxChunk+(64<<10))
}

// FetchMany gets the stored bytes of several chunks in one request
// (agentapi.ChunksURL): at most agentapi.MaxChunkBatch, each with its
// stored size from the index, by which the response is split.
func (s *HTTPChunks) FetchMany(ctx context.Context, chunks []chunkstore.IndexChunk) ([][]byte, error) {
	ids := make([]string, len(chunks))
	var total int64
	for i, c := range chunks {
		ids[i] = c.ID.String()
		total += c.Stored
	}
	what := fmt.Sprintf("%d chunks from %s (the first %s)", len(chunks), s.Base, ids[0])
	b, err := s.getAs(ctx, agentapi.ChunksURL(s.Base, ids), what, total, total)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(chunks))
	for i, c := range chunks {
		out[i], b = b[:c.Stored:c.Stored], b[c.Stored:]
	}
	return out, nil
}

// Index reads the chunk index at url, retrying a failed download a few
// times.
func (s *HTTPChunks) Index(ctx context.Context, url string) (*chunkstore.Index, error) {
	var err error
	delay := time.Second
	for try := 0; try < 5; try++ {
		if try > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			delay *= 2
		}
		var b []byte
		b, err = s.get(ctx, url, 0, maxIndexBytes)
		if err == nil {
			var ix *chunkstore.Index
			if ix, err = chunkstore.ReadIndex(bytes.NewReader(b)); err != nil {
				return nil, fmt.Errorf("%s: %w", url, err)
			}
			return ix, nil
		}
		if isPermanent(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("imaging: chunk index %s: %w", url, err)
}

// maxIndexBytes bounds an index download: 16 Mi chunks, 1 TiB of image.
var maxIndexBytes = chunkstore.IndexFileSize(16 << 20)

// get downloads url whole; want, when non-zero, is the length it must
// have.
func (s *HTTPChunks) get(ctx context.Context, url string, want, limit int64) ([]byte, error) {
	return s.getAs(ctx, url, url, want, limit)
}

// getAs is get naming the request what in its errors.
func (s *HTTPChunks) getAs(ctx context.Context, url, what string, want, limit int64) ([]byte, error) {
	b, loc, err := httpGet(ctx, s.httpClient(), s.Header, url, what, want, limit, s.Timeout)
	if err == nil && loc != "" {
		return nil, fmt.Errorf("%s: redirected to %s", what, loc)
	}
	return b, err
}

// httpGet downloads url whole with client, within timeout (0: 60 s),
// naming the request what in its errors; want, when non-zero, is the
// length it must have. A redirect the client does not follow is
// returned as its resolved location, with no body. A 404, 410 or other
// 4xx but 408 and 429 is Permanent, and so is a length other than the
// index says.
func httpGet(ctx context.Context, client *http.Client, header http.Header, url, what string, want, limit int64, timeout time.Duration) (body []byte, location string, err error) {
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", Permanent(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "":
		loc, err := resp.Location()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %s to a bad location: %w", what, resp.Status, err)
		}
		return nil, loc.String(), nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, "", Permanent(fmt.Errorf("%s: %s: the appliance does not have it", what, resp.Status))
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		return nil, "", Permanent(fmt.Errorf("%s: %s", what, resp.Status))
	default:
		return nil, "", fmt.Errorf("%s: %s", what, resp.Status)
	}
	if resp.ContentLength > limit || (want > 0 && resp.ContentLength >= 0 && resp.ContentLength != want) {
		// Not what the index says is there (or a server that does not
		// know batches answered something else): asking again gives
		// the same.
		return nil, "", Permanent(fmt.Errorf("%s: %d bytes, want %d", what, resp.ContentLength, max(want, limit)))
	}
	var buf bytes.Buffer
	buf.Grow(int(max(want, resp.ContentLength, 0)) + bytes.MinRead) // room to see the end without copying
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1)); err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	if int64(buf.Len()) > limit {
		return nil, "", fmt.Errorf("%s: more than %d bytes", what, limit)
	}
	if want > 0 && int64(buf.Len()) != want {
		return nil, "", fmt.Errorf("%s: %d bytes, want %d", what, buf.Len(), want)
	}
	return buf.Bytes(), "", nil
}
