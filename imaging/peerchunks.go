package imaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// PeerChunks is the agent's chunk store with peer distribution
// (docs/DESIGN.md, "Peer distribution"): it asks the appliance for each
// chunk with agentapi.ParamPeers, and when the appliance answers with a
// redirect to a peer, fetches the chunk from that peer within
// PeerTimeout and verifies it (peers are not trusted). A peer that
// fails, by its bytes or by not answering in time, is reported through
// OnPeerFailure and not asked again for Rest; the chunk is then fetched
// from the appliance, without the parameter, so never redirected. A
// peer costs an install at most PeerTimeout per chunk, and a dead one
// that only once.
//
// Indexes come from the appliance as with HTTPChunks. A PeerChunks
// must not be copied after first use.
type PeerChunks struct {
	// Base is the chunk store's URL (the plan's Image.Chunks).
	Base string
	// Image is the SHA-256 of the image being installed (the plan's
	// Image.SHA256), sent as agentapi.ParamPeers: the appliance picks a
	// holder of that image. Empty means no redirects are asked for.
	Image string
	// Header is added to every request to the appliance, never to a
	// peer's.
	Header http.Header
	// Client sends the requests to the appliance; its redirects are
	// never followed (PeerChunks uses a copy without them). Nil means
	// one with connect, header and idle timeouts.
	Client *http.Client
	// Timeout bounds one request to the appliance, body included.
	// Default 60 s.
	Timeout time.Duration
	// PeerClient sends the requests to peers. Nil means one that gives
	// a peer 2 s to connect and 2 s to answer: peers are on the
	// segment, and a slow one is worth less than the appliance (1 s,
	// the first choice, failed healthy peers on a loaded machine: P8's
	// fifty agents on two cores).
	PeerClient *http.Client
	// PeerTimeout bounds one fetch from a peer, body included. Default
	// 5 s.
	PeerTimeout time.Duration
	// Rest is how long a peer that could not be reached or served bytes
	// that do not verify is not asked again (the appliance is told, and
	// stops sending others to it). Default 30 s.
	Rest time.Duration
	// MaxDefer is how long a chunk may be deferred in all
	// (agentapi.PlaceLater) before it is fetched from the appliance
	// without asking where. Default 10 s.
	MaxDefer time.Duration
	// SlowRest is how long a peer that answered too slowly or broke off
	// mid-transfer is not asked again by this agent; it is not
	// reported. Default 10 s.
	SlowRest time.Duration
	// OnPeerFailure, if set, is told each peer that failed by being
	// unreachable or by its bytes, for the next holdings report. It
	// must not block.
	OnPeerFailure func(agentapi.PeerFailure)
	// Logger receives peer failures. Default slog.Default().
	Logger *slog.Logger

	once       sync.Once
	err        error
	direct     HTTPChunks
	client     *http.Client
	peerClient *http.Client
	dec        *zstd.Decoder

	mu       sync.Mutex
	rested   map[string]time.Time             // peer base → asked again after
	deferred map[chunkstore.ChunkID]time.Time // chunk → first deferred at

	whereOff atomic.Bool // the appliance does not answer where-requests

	fromAppliance, fromPeers atomic.Int64
}

func (s *PeerChunks) init() {
	client := s.Client
	if client == nil {
		client = newHTTPClient(32)
	}
	noFollow := *client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = &noFollow
	s.direct = HTTPChunks{Base: s.Base, Header: s.Header, Client: s.client, Timeout: s.Timeout}
	s.peerClient = s.PeerClient
	if s.peerClient == nil {
		dialer := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
		s.peerClient = &http.Client{
			Transport: &http.Transport{
				DialContext:           dialer.DialContext,
				ResponseHeaderTimeout: 2 * time.Second,
				IdleConnTimeout:       30 * time.Second,
				MaxIdleConnsPerHost:   4,
				DisableCompression:    true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s.dec, s.err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(2*chunkstore.MaxChunk))
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	s.rested = map[string]time.Time{}
	s.deferred = map[chunkstore.ChunkID]time.Time{}
}

// Index reads the chunk index at u from the appliance.
func (s *PeerChunks) Index(ctx context.Context, u string) (*chunkstore.Index, error) {
	s.once.Do(s.init)
	return s.direct.Index(ctx, u)
}

// Received is the compressed bytes of chunks received so far from the
// appliance and from peers.
func (s *PeerChunks) Received() (appliance, peers int64) {
	return s.fromAppliance.Load(), s.fromPeers.Load()
}

// Fetch gets chunk id: from the peer the appliance redirects to, else
// from the appliance.
func (s *PeerChunks) Fetch(ctx context.Context, id chunkstore.ChunkID, stored int64) ([]byte, error) {
	s.once.Do(s.init)
	if s.err != nil {
		return nil, s.err
	}
	u := agentapi.ChunkURL(s.Base, id.String())
	if s.Image != "" {
		u = withQuery(u, agentapi.ParamPeers+"="+url.QueryEscape(s.Image))
	}
	z, loc, err := httpGet(ctx, s.client, s.Header, u, u, stored, chunkLimit, s.Timeout)
	if err != nil {
		return nil, err
	}
	if loc != "" {
		if z, ok := s.fromPeer(ctx, loc, id); ok {
			return z, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		z, err = s.direct.Fetch(ctx, id, stored)
		if err != nil {
			return nil, err
		}
	}
	s.fromAppliance.Add(int64(len(z)))
	return z, nil
}

// FetchMany gets several chunks (BatchSource): it asks the appliance
// where they are (agentapi.ParamWhere), fetches the peers' from them,
// each verified, up to 8 at once, and the rest, with those whose peer
// failed, in one batch from the appliance. A chunk the appliance says to
// ask for later is left nil (Assemble asks again after other chunks),
// until it has been deferred for MaxDefer: then it comes from the
// appliance. Without Image all come in one batch from the appliance;
// from an appliance that does not answer where-requests, the error is
// Permanent, so that Assemble fetches one by one (Fetch, whose requests
// may be redirected).
func (s *PeerChunks) FetchMany(ctx context.Context, chunks []chunkstore.IndexChunk) ([][]byte, error) {
	s.once.Do(s.init)
	if s.err != nil {
		return nil, s.err
	}
	out := make([][]byte, len(chunks))
	places := s.where(ctx, chunks)
	if places == nil && s.Image != "" && s.whereOff.Load() {
		// Batches would take every chunk from the appliance: one by
		// one, Fetch asks with the peers parameter.
		return nil, Permanent(errors.New("imaging: the appliance does not say where chunks are: no batches with peers"))
	}
	later := make([]bool, len(chunks))
	if places != nil {
		now := time.Now()
		s.mu.Lock()
		for i, c := range chunks {
			if places[i] != agentapi.PlaceLater {
				delete(s.deferred, c.ID)
				continue
			}
			places[i] = ""
			first, ok := s.deferred[c.ID]
			if !ok {
				first = now
				s.deferred[c.ID] = now
			}
			if now.Sub(first) < s.maxDefer() {
				later[i] = true
			} else {
				delete(s.deferred, c.ID)
			}
		}
		s.mu.Unlock()
		var wg sync.WaitGroup
		slots := make(chan struct{}, 8)
		for i, c := range chunks {
			if places[i] == "" {
				continue
			}
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				if z, ok := s.fromPeer(ctx, agentapi.ChunkURL(places[i]+agentapi.PeerChunks, c.ID.String()), c.ID); ok {
					out[i] = z
				}
			}()
		}
		wg.Wait()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var rest []chunkstore.IndexChunk
	var at []int
	for i, c := range chunks {
		if out[i] == nil && !later[i] {
			rest, at = append(rest, c), append(at, i)
		}
	}
	var zs [][]byte
	switch len(rest) {
	case 0:
	case 1:
		z, err := s.direct.Fetch(ctx, rest[0].ID, rest[0].Stored)
		if err != nil {
			return nil, err
		}
		zs = [][]byte{z}
	default:
		var err error
		if zs, err = s.direct.FetchMany(ctx, rest); err != nil {
			return nil, err
		}
	}
	for k, z := range zs {
		out[at[k]] = z
		s.fromAppliance.Add(int64(len(z)))
	}
	return out, nil
}

func (s *PeerChunks) maxDefer() time.Duration {
	if s.MaxDefer > 0 {
		return s.MaxDefer
	}
	return 10 * time.Second
}

// where asks the appliance where chunks are: for each, a peer's base
// URL or "" for the appliance; nil when it does not say.
func (s *PeerChunks) where(ctx context.Context, chunks []chunkstore.IndexChunk) []string {
	if s.Image == "" || s.whereOff.Load() {
		return nil
	}
	ids := make([]string, len(chunks))
	for i, c := range chunks {
		ids[i] = c.ID.String()
	}
	u := agentapi.WhereURL(s.Base, ids, url.QueryEscape(s.Image))
	what := fmt.Sprintf("where %d chunks are (the first %s)", len(ids), ids[0])
	b, loc, err := httpGet(ctx, s.client, s.Header, u, what, 0, 64<<10, s.Timeout)
	if err != nil || loc != "" {
		if (isPermanent(err) || loc != "") && s.whereOff.CompareAndSwap(false, true) {
			s.Logger.Info("the appliance does not say where chunks are; all come from it", "err", err)
		}
		return nil
	}
	var p agentapi.ChunkPlaces
	if err := json.Unmarshal(b, &p); err != nil || len(p.Peers) != len(chunks) {
		s.Logger.Warn("the appliance's answer of where chunks are does not fit the request", "chunks", len(chunks), "err", err)
		return nil
	}
	return p.Peers
}

var _ BatchSource = (*PeerChunks)(nil)

// chunkLimit bounds a chunk's compressed bytes: zstd's worst case for
// the largest chunk, and room.
const chunkLimit = 2*chunkstore.MaxChunk + 64<<10

// fromPeer fetches chunk id from loc, the appliance's redirect, and
// verifies it. It reports whether it got the chunk; a failed peer is
// rested and reported, unless the failure was the peer declining (404:
// it no longer holds it; 503: busy), which costs it nothing.
func (s *PeerChunks) fromPeer(ctx context.Context, loc string, id chunkstore.ChunkID) ([]byte, bool) {
	peer, ok := peerBase(loc, id)
	if !ok {
		s.Logger.Warn("the appliance redirected a chunk to a URL that is no peer's", "chunk", id.String(), "location", truncate(loc))
		return nil, false
	}
	if s.resting(peer) {
		return nil, false
	}
	timeout := s.PeerTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	z, declined, err := s.getPeer(ctx, loc, timeout)
	bad := false
	if err == nil {
		if err = s.verify(z, id); err != nil {
			bad = true
		}
	}
	switch {
	case err == nil:
		s.fromPeers.Add(int64(len(z)))
		return z, true
	case ctx.Err() != nil || declined:
		// Our own end, or the peer's honest no: nobody to blame.
		return nil, false
	}
	// A peer that cannot be reached, or whose bytes are wrong, is
	// rested and reported: the appliance stops sending others to it.
	// One that answered too slowly or broke off is busy, not gone (a
	// machine writing its own disk): this agent alone rests it, for
	// less; if it has gone, the next connection fails and tells.
	var op *net.OpError
	dead := bad || (errors.As(err, &op) && op.Op == "dial")
	rest := s.Rest
	if rest <= 0 {
		rest = 30 * time.Second
	}
	if !dead {
		rest = s.SlowRest
		if rest <= 0 {
			rest = 10 * time.Second
		}
	}
	s.mu.Lock()
	s.rested[peer] = time.Now().Add(rest)
	s.mu.Unlock()
	s.Logger.Warn("peer failed: the chunk comes from the appliance", "peer", peer, "chunk", id.String(), "bad", bad, "reported", dead, "err", err)
	if dead && s.OnPeerFailure != nil {
		s.OnPeerFailure(agentapi.PeerFailure{Peer: peer, Bad: bad})
	}
	return nil, false
}

// getPeer downloads a chunk from a peer within timeout. declined is
// true for the answers of a peer that works but will not serve it.
func (s *PeerChunks) getPeer(ctx context.Context, loc string, timeout time.Duration) (z []byte, declined bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := s.peerClient.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusServiceUnavailable:
		return nil, true, fmt.Errorf("%s", resp.Status)
	default:
		return nil, false, fmt.Errorf("%s", resp.Status)
	}
	if resp.ContentLength > chunkLimit {
		return nil, false, fmt.Errorf("%d bytes", resp.ContentLength)
	}
	var buf bytes.Buffer
	buf.Grow(int(max(resp.ContentLength, 64<<10)) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, chunkLimit+1)); err != nil {
		return nil, false, err
	}
	if buf.Len() > chunkLimit {
		return nil, false, fmt.Errorf("more than %d bytes", chunkLimit)
	}
	return buf.Bytes(), false, nil
}

// verify checks that z is a zstd frame of chunk id.
func (s *PeerChunks) verify(z []byte, id chunkstore.ChunkID) error {
	buf := getChunkBuf(chunkstore.MaxChunk)
	defer putChunkBuf(buf)
	out, err := s.dec.DecodeAll(z, buf[:0])
	switch {
	case err != nil:
		return fmt.Errorf("%w: not a zstd frame: %v", ErrChecksum, err)
	case len(out) > chunkstore.MaxChunk:
		return fmt.Errorf("%w: %d bytes, more than a chunk", ErrChecksum, len(out))
	case chunkstore.ChunkID(sha256.Sum256(out)) != id:
		return fmt.Errorf("%w: its bytes hash to %x", ErrChecksum, sha256.Sum256(out))
	}
	return nil
}

func (s *PeerChunks) resting(peer string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.rested[peer]
	if ok && time.Now().After(until) {
		delete(s.rested, peer)
		return false
	}
	return ok
}

// peerBase checks that loc names chunk id on a peer's chunk server
// (http://HOST:PORT/chunks/XXXX/ID.zst, nothing else) and returns the
// peer's base URL, http://HOST:PORT.
func peerBase(loc string, id chunkstore.ChunkID) (string, bool) {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	if u.EscapedPath() != agentapi.ChunkURL(agentapi.PeerChunks, id.String()) {
		return "", false
	}
	return "http://" + u.Host, true
}

// withQuery adds a parameter to u's query.
func withQuery(u, param string) string {
	if strings.Contains(u, "?") {
		return u + "&" + param
	}
	return u + "?" + param
}

// truncate cuts a string from the network for a log line.
func truncate(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}

var _ ChunkStore = (*PeerChunks)(nil)
