package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// The image downloads follow the client's failover, as the API requests
// do, when the image is on an appliance: its URL names the host of one of
// the appliances of the kernel command line. The appliances of a fleet
// serve the same images at the same paths and ports, so a URL on one is
// moved to another by its host alone (client.at), and a raw image cut
// mid-way goes on with a Range request from the byte it reached on the
// next appliance, into the same decompressor and hash (imaging.Opener).
// An image elsewhere (a mirror) is fetched as it is, without the token.

// onAppliance reports whether raw is on one of the appliances: its host
// is one of theirs.
func (c *client) onAppliance(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	for _, s := range c.servers {
		if strings.EqualFold(u.Hostname(), s.Hostname()) {
			return true
		}
	}
	return false
}

// at returns raw, a URL on one of the appliances, moved to server: on
// server's host with raw's scheme, port and path; a URL at an appliance's
// API origin moves to server's API origin. A URL on no appliance is
// returned as it is.
func (c *client) at(raw string, server *url.URL) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	for _, s := range c.servers {
		if sameOrigin(raw, s) {
			if sameOrigin(raw, server) {
				return raw
			}
			u.Scheme, u.Host = server.Scheme, server.Host
			return u.String()
		}
	}
	if strings.EqualFold(u.Hostname(), server.Hostname()) {
		return raw // as the plan wrote it
	}
	for _, s := range c.servers {
		if strings.EqualFold(u.Hostname(), s.Hostname()) {
			host, port := server.Hostname(), u.Port()
			switch {
			case port != "":
				u.Host = net.JoinHostPort(host, port)
			case strings.Contains(host, ":"):
				u.Host = "[" + host + "]" // an IPv6 literal
			default:
				u.Host = host
			}
			return u.String()
		}
	}
	return raw
}

// sameOrigin reports whether raw is at server's API origin (same scheme,
// host and port), so that the install token may be sent with it: an image
// on another server must not learn it, nor may it cross in clear to the
// appliance's plain HTTP port, where images are served while the API is
// on HTTPS.
func sameOrigin(raw string, server *url.URL) bool {
	u, err := url.Parse(raw)
	return err == nil && strings.EqualFold(u.Scheme, server.Scheme) && strings.EqualFold(u.Host, server.Host)
}

// imageSource is the Opener of a plan's image: an HTTP download that
// resumes with Range requests, from the appliance requests go to when
// the image is on an appliance, carrying the install token when it is at
// the API's origin.
func (c *client) imageSource(img agentapi.Image) imaging.Opener {
	if !c.onAppliance(img.URL) {
		return (&imaging.HTTPSource{URL: img.URL}).Open
	}
	f := &failoverImage{c: c, url: img.URL, srcs: map[string]*imaging.HTTPSource{}}
	return f.open
}

// failoverImage opens an image on the appliances at the one requests go to.
type failoverImage struct {
	c   *client
	url string // as in the plan

	mu   sync.Mutex
	srcs map[string]*imaging.HTTPSource // by URL, each keeps its connections
}

func (f *failoverImage) open(ctx context.Context, off int64) (io.ReadCloser, error) {
	i, server := f.c.server()
	u := f.c.at(f.url, server)
	f.mu.Lock()
	src, ok := f.srcs[u]
	if !ok {
		src = &imaging.HTTPSource{URL: u}
		if sameOrigin(u, server) {
			src.Header = f.c.authHeader()
		}
		f.srcs[u] = src
	}
	f.mu.Unlock()
	rc, err := src.Open(ctx, off)
	if err != nil {
		if !imaging.IsPermanent(err) && ctx.Err() == nil {
			f.c.failover(i, err)
		}
		return nil, err
	}
	return &failoverBody{ReadCloser: rc, ctx: ctx, fail: func(err error) { f.c.failover(i, err) }}, nil
}

// failoverBody is an image response body whose read failure (the
// appliance died, the connection was reset or stalled) moves the client
// to the next appliance, where imaging's resumer reopens the image at the
// byte reached.
type failoverBody struct {
	io.ReadCloser
	ctx  context.Context
	fail func(error)
}

func (b *failoverBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.ctx.Err() == nil {
		b.fail(err)
	}
	return n, err
}

// Size is the body's, for the resumer's check that the image did not
// change between appliances: 0 if unknown.
func (b *failoverBody) Size() int64 {
	if s, ok := b.ReadCloser.(interface{ Size() int64 }); ok {
		return s.Size()
	}
	return 0
}

// chunkStore is where a chunked image's index and chunks come from: the
// appliance requests go to, when the chunks are on an appliance.
func (c *client) chunkStore(img agentapi.Image) imaging.ChunkStore {
	if !c.onAppliance(img.Chunks) {
		return &imaging.HTTPChunks{Base: img.Chunks}
	}
	return c.chunksAt(func(server *url.URL) chunkSource {
		return &imaging.HTTPChunks{Base: c.at(img.Chunks, server), Header: c.chunkHeader(img, server)}
	})
}

// chunksAt is a chunk store that follows the failover, open
// returning its store at one appliance.
func (c *client) chunksAt(open func(server *url.URL) chunkSource) *failoverChunks {
	return &failoverChunks{c: c, open: open, stores: map[string]chunkSource{}}
}

// chunkSource is a chunk store at one appliance: imaging.HTTPChunks, or
// imaging.PeerChunks with peer distribution.
type chunkSource interface {
	imaging.ChunkStore
	FetchMany(ctx context.Context, chunks []chunkstore.IndexChunk) ([][]byte, error)
}

// chunkHeader is what requests for img's chunks and indexes carry at
// server: the install token when all of them are at its API's origin,
// else nothing.
func (c *client) chunkHeader(img agentapi.Image, server *url.URL) http.Header {
	at := func(raw string) bool { return sameOrigin(c.at(raw, server), server) }
	if at(img.Chunks) && at(img.URL) && (img.Seed == nil || at(img.Seed.URL)) {
		return c.authHeader()
	}
	return nil
}

// failoverChunks is an imaging.ChunkStore (and BatchSource) on the
// appliances, at the one requests go to. A failed fetch moves them to the
// next appliance; the assembly's retries take it there.
type failoverChunks struct {
	c    *client
	open func(server *url.URL) chunkSource

	mu     sync.Mutex
	stores map[string]chunkSource // by appliance, each keeps its connections
}

// store returns the chunk store at the appliance requests go to, and the
// appliance's index for failover.
func (f *failoverChunks) store() (int, *url.URL, chunkSource) {
	i, server := f.c.server()
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.stores[server.String()]
	if !ok {
		s = f.open(server)
		f.stores[server.String()] = s
	}
	return i, server, s
}

// failed moves the requests on after err, unless retrying cannot fix it.
func (f *failoverChunks) failed(ctx context.Context, i int, err error) {
	if err != nil && !imaging.IsPermanent(err) && ctx.Err() == nil {
		f.c.failover(i, err)
	}
}

func (f *failoverChunks) Fetch(ctx context.Context, id chunkstore.ChunkID, stored int64) ([]byte, error) {
	i, _, s := f.store()
	b, err := s.Fetch(ctx, id, stored)
	f.failed(ctx, i, err)
	return b, err
}

func (f *failoverChunks) FetchMany(ctx context.Context, chunks []chunkstore.IndexChunk) ([][]byte, error) {
	i, _, s := f.store()
	b, err := s.FetchMany(ctx, chunks)
	f.failed(ctx, i, err)
	return b, err
}

// Index reads the index at raw (a URL as in the plan) from each appliance
// in turn until one has it; each one's own retries come first.
func (f *failoverChunks) Index(ctx context.Context, raw string) (*chunkstore.Index, error) {
	var err error
	for range f.c.servers {
		i, server, s := f.store()
		var ix *chunkstore.Index
		if ix, err = s.Index(ctx, f.c.at(raw, server)); err == nil || imaging.IsPermanent(err) || ctx.Err() != nil {
			return ix, err
		}
		f.failed(ctx, i, err)
	}
	return nil, err
}
