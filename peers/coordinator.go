package peers

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// Errors of Hold. The agent API answers them with 4xx: the report is
// wrong, not the appliance.
var (
	// ErrUnknownImage: the report names an image whose index is not
	// published (not in the catalog, or not chunked).
	ErrUnknownImage = errors.New("peers: unknown image")
	// ErrBadHoldings: the bitmap does not fit the index, or the port
	// or address is not one a peer can be reached at.
	ErrBadHoldings = errors.New("peers: bad holdings")
)

// Coordinator keeps, per published image, which agents hold which of
// its chunks, and picks a peer for a chunk request. Set the fields
// before first use; a Coordinator is safe for concurrent use. Zero
// durations and counts mean the defaults.
type Coordinator struct {
	// Index returns the published chunk index of the image whose
	// SHA-256 (hex, the plan's Image.SHA256) is image, or an error
	// wrapping ErrUnknownImage when the catalog publishes none; any other
	// error (an index that cannot be read) Hold returns as it is.
	// Required: an agent can announce only an image the catalog
	// publishes, and the index maps a chunk id to the positions the
	// bitmaps are over.
	Index func(image string) (*chunkstore.Index, error)
	// TTL is how long a holder stays live after its last report: one
	// not heard from since is never picked, and is forgotten. Default
	// 15 s; agents report every few seconds (HoldingsReply.IntervalMS).
	TTL time.Duration
	// Uploads is how many uploads one peer is given at once, as the
	// appliance estimates them: it does not see the transfers, so a
	// redirect counts as one for as long as the chunk would take at
	// UploadRate (at least 1 ms). The peer enforces its own cap and
	// answers 503 beyond it, which costs the requester nothing but the
	// fallback. Default 4.
	Uploads int
	// UploadRate is the speed one upload is assumed to run at, in bytes
	// per second. Default 32 MiB/s: four at once fill a peer's 1 Gbit/s
	// link. (A fixed lease of seconds, the first version, let a peer
	// take 2 chunks a second: TestPeerWave saw 5.8 images of 6 come
	// from the appliance.)
	UploadRate int64
	// Rest is how long a peer reported unreachable (a timeout, a
	// refusal, a cut transfer) is not picked for requesters in the
	// reporter's subnet. Default 30 s. A peer reported bad (its bytes
	// did not verify) is not picked again until Forget.
	Rest time.Duration
	// SubnetBits is the prefix length within which a holder counts as
	// the requester's neighbour (same subnet: preferred). Default 24;
	// an IPv6 address uses 64.
	SubnetBits int
	// SubnetOnly picks only holders in the requester's subnet (rackboot
	// serve --peers subnet): where firewalls or routers between subnets
	// would cut peer transfers, a chunk no neighbour holds comes from
	// the appliance.
	SubnetOnly bool
	// Pending is how long after the appliance sent a chunk to an agent
	// Places tells others to ask for it later rather than fetch it from
	// the appliance too: the agent holds it once it has written it and
	// reported. Default 5 s.
	Pending time.Duration
	// Now and Rand (a uniform int in [0, n)) are the clock and the
	// randomness; nil means the real ones.
	Now  func() time.Time
	Rand func(n int) int

	mu     sync.Mutex
	images map[string]*image
	bad    map[string]bool // MACs of peers that served bad bytes
	swept  time.Time
}

// Requester is who asks for a chunk: its MAC (from the request's
// mac parameter) and the address its request came from.
type Requester struct {
	MAC  string
	Addr netip.Addr
}

// image is one published image's holders.
type image struct {
	ix      *chunkstore.Index
	pos     map[chunkstore.ChunkID][]int32 // positions of each non-zero chunk
	holders map[string]*holder             // by MAC
	// sent records, for Places, the last agent the appliance was told
	// to serve each chunk to, and when.
	sent map[chunkstore.ChunkID]sent
}

// sent is a chunk the appliance serves to an agent: to, by MAC, at.
type sent struct {
	to string
	at time.Time
}

// holder is one agent serving chunks of an image.
type holder struct {
	mac  string
	base string // "http://IP:PORT"
	addr netip.Addr
	have agentapi.Bitmap
	seen time.Time
	// rest holds, per subnet of the requesters that reported it
	// unreachable, when it may be picked by them again: a firewall
	// between two subnets idles a peer for one, not for its neighbours.
	// The invalid prefix stands for every requester.
	rest   map[netip.Prefix]time.Time
	until  time.Time   // live until, past the TTL: a finished install's linger
	leases []time.Time // ends of the redirects counted against Uploads
}

// Hold records an agent's holdings report, received from addr: which
// chunks of the image it has and the port it serves them on, and the
// peers that failed it (reported as with Report). A report with port 0
// withdraws the agent as a holder of the image. A refused report
// changes nothing.
func (c *Coordinator) Hold(mac string, addr netip.Addr, h agentapi.Holdings) error {
	now := c.now()
	addr = addr.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
	im, err := c.image(h.Image)
	if err != nil {
		return err
	}
	switch {
	case len(h.Failed) > agentapi.MaxPeerFailures:
		return fmt.Errorf("%w: %d peer failures, at most %d", ErrBadHoldings, len(h.Failed), agentapi.MaxPeerFailures)
	case h.Port == 0:
	case h.Port < 0 || h.Port > 65535:
		return fmt.Errorf("%w: port %d", ErrBadHoldings, h.Port)
	case !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() || addr.Zone() != "":
		return fmt.Errorf("%w: address %v", ErrBadHoldings, addr)
	case mac == "":
		return fmt.Errorf("%w: no MAC", ErrBadHoldings)
	default:
		if err := h.Have.Check(len(im.ix.Chunks)); err != nil {
			return fmt.Errorf("%w: %v", ErrBadHoldings, err)
		}
	}
	for _, f := range h.Failed {
		c.report(im, f.Peer, f.Bad, addr, now)
	}
	if h.Port == 0 {
		delete(im.holders, mac)
		return nil
	}
	ho := im.holders[mac]
	if ho == nil {
		ho = &holder{mac: mac}
		im.holders[mac] = ho
	}
	ho.addr = addr
	ho.base = "http://" + netip.AddrPortFrom(addr, uint16(h.Port)).String()
	ho.have = append(ho.have[:0], h.Have...)
	ho.seen = now
	return nil
}

// Pick returns the URL of chunk id on a live peer that holds it, for
// requester r: chosen at random among the holders other than r that are
// live, neither resting nor reported bad, and below their upload cap,
// among those in r's subnet when there are any. The redirect is counted
// against the peer's cap for the chunk's time at UploadRate. ok is false
// when there is no such peer, the chunk is not in the image (or all
// zeros), or the image is unknown: the appliance serves the chunk
// itself.
func (c *Coordinator) Pick(imageSHA string, id chunkstore.ChunkID, r Requester) (peerURL string, ok bool) {
	if id.IsZero() {
		return "", false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	im := c.images[imageSHA]
	if im == nil {
		return "", false
	}
	h, _ := c.pick(im, id, r, now)
	if h == nil {
		return "", false
	}
	return agentapi.ChunkURL(h.base+agentapi.PeerChunks, id.String()), true
}

// pick is Pick on a known image, with c.mu held. Without a peer to pick,
// busy says whether one holds the chunk but is at its upload cap.
func (c *Coordinator) pick(im *image, id chunkstore.ChunkID, r Requester, now time.Time) (h *holder, busy bool) {
	pos := im.pos[id]
	if len(pos) == 0 {
		return nil, false
	}
	raddr := r.Addr.Unmap()
	home := c.subnet(raddr)
	var near, far *holder
	nNear, nFar := 0, 0
	for _, h := range im.holders {
		if !c.usable(h, r.MAC, raddr, home, now) || !holds(h.have, pos) {
			continue
		}
		isNear := home.IsValid() && home.Contains(h.addr)
		if !isNear && c.SubnetOnly {
			continue
		}
		if !c.belowCap(h, now) {
			busy = true
			continue
		}
		if isNear {
			if nNear++; c.rand(nNear) == 0 {
				near = h
			}
		} else if nFar++; c.rand(nFar) == 0 {
			far = h
		}
	}
	h = near
	if h == nil {
		h = far
	}
	if h == nil {
		return nil, busy
	}
	h.leases = append(h.leases, now.Add(c.lease(im.ix.Chunks[pos[0]].Stored)))
	return h, false
}

// Places picks a peer for each of a batch's chunks, as Pick does: the
// peer's base URL ("http://IP:PORT", agentapi.ChunkPlaces), "" for the
// appliance, or agentapi.PlaceLater when no peer can serve it now but
// one will soon: its holders are at their upload cap, or the appliance
// sent it to a peer less than Pending ago (that peer holds it once it
// has written it and reported). So at the start of a wave the
// appliance sends each chunk about once, not once per machine.
func (c *Coordinator) Places(imageSHA string, ids []chunkstore.ChunkID, r Requester) []string {
	out := make([]string, len(ids))
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	im := c.images[imageSHA]
	if im == nil {
		return out
	}
	raddr := r.Addr.Unmap()
	home := c.subnet(raddr)
	for i, id := range ids {
		if id.IsZero() {
			continue
		}
		h, busy := c.pick(im, id, r, now)
		switch {
		case h != nil:
			out[i] = h.base
		case busy:
			out[i] = agentapi.PlaceLater
		default:
			if s, ok := im.sent[id]; ok && now.Sub(s.at) < c.pending() && s.to != r.MAC {
				if to := im.holders[s.to]; to != nil && c.usable(to, r.MAC, raddr, home, now) &&
					(!c.SubnetOnly || (home.IsValid() && home.Contains(to.addr))) {
					out[i] = agentapi.PlaceLater
					continue
				}
			}
			if len(im.pos[id]) > 0 {
				if im.sent == nil {
					im.sent = map[chunkstore.ChunkID]sent{}
				}
				im.sent[id] = sent{to: r.MAC, at: now}
			}
		}
	}
	return out
}

// Report marks the peer at base ("http://IP:PORT", as agentapi.PeerFailure
// names it) as failed for the image, by the requester at from: bad (it
// served bytes that did not verify) excludes it until Forget; otherwise
// it rests for Rest for the requesters in from's subnet (for all when
// from is not a valid address).
func (c *Coordinator) Report(imageSHA, base string, bad bool, from netip.Addr) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if im := c.images[imageSHA]; im != nil {
		c.report(im, base, bad, from.Unmap(), now)
	}
}

// Forget drops everything known of the agent with this MAC: its
// holdings of every image and a bad report. Call it when its install
// ends and it stops serving, or a reinstall starts.
func (c *Coordinator) Forget(mac string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.bad, mac)
	for sha, im := range c.images {
		delete(im.holders, mac)
		if len(im.holders) == 0 {
			delete(c.images, sha)
		}
	}
}

// Finish keeps what the agent with this MAC holds live for linger
// without further reports: its install ended well, and with it its
// install token, so it can report no more (docs/DESIGN.md, "how long an
// agent serves"). Its agent serves that long at most. A linger of 0
// forgets it.
func (c *Coordinator) Finish(mac string, linger time.Duration) {
	if linger <= 0 {
		c.Forget(mac)
		return
	}
	until := c.now().Add(linger)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, im := range c.images {
		if h := im.holders[mac]; h != nil {
			h.until = until
		}
	}
}

// live reports whether h may be picked: heard from within TTL, or
// finished and lingering.
func (c *Coordinator) live(h *holder, now time.Time) bool {
	return now.Sub(h.seen) <= c.ttl() || now.Before(h.until)
}

// Installing is the number of agents other than mac installing the
// image now: holders heard from within TTL whose install has not
// finished. None means the wave mac belongs to has ended for it: no one
// still needs what it holds.
func (c *Coordinator) Installing(imageSHA, mac string) int {
	return c.count(imageSHA, func(h *holder, now time.Time) bool {
		return h.mac != mac && h.until.IsZero() && now.Sub(h.seen) <= c.ttl()
	})
}

// Holders is the number of live holders of the image, for tests.
func (c *Coordinator) Holders(imageSHA string) int {
	return c.count(imageSHA, c.live)
}

// count is the number of the image's holders that match.
func (c *Coordinator) count(imageSHA string, match func(*holder, time.Time) bool) int {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	if im := c.images[imageSHA]; im != nil {
		for _, h := range im.holders {
			if match(h, now) {
				n++
			}
		}
	}
	return n
}

// image returns the state of a published image, making it on its first
// report. Called with c.mu held.
func (c *Coordinator) image(sha string) (*image, error) {
	if im := c.images[sha]; im != nil {
		return im, nil
	}
	if c.Index == nil {
		return nil, fmt.Errorf("%w %.64q: no published indexes", ErrUnknownImage, sha)
	}
	ix, err := c.Index(sha)
	if err != nil {
		return nil, err
	}
	if ix == nil || ix.Digest() != sha {
		return nil, fmt.Errorf("%w %.64q", ErrUnknownImage, sha)
	}
	im := &image{ix: ix, pos: make(map[chunkstore.ChunkID][]int32, len(ix.Chunks)), holders: map[string]*holder{}}
	for i, ch := range ix.Chunks {
		if !ch.ID.IsZero() {
			im.pos[ch.ID] = append(im.pos[ch.ID], int32(i))
		}
	}
	if c.images == nil {
		c.images = map[string]*image{}
	}
	c.images[sha] = im
	return im, nil
}

func (c *Coordinator) report(im *image, base string, bad bool, from netip.Addr, now time.Time) {
	for _, h := range im.holders {
		if h.base != base {
			continue
		}
		if bad {
			if c.bad == nil {
				c.bad = map[string]bool{}
			}
			c.bad[h.mac] = true
			continue
		}
		if h.rest == nil {
			h.rest = map[netip.Prefix]time.Time{}
		}
		for p, until := range h.rest {
			if !now.Before(until) {
				delete(h.rest, p)
			}
		}
		h.rest[c.subnet(from)] = now.Add(c.rest())
	}
}

// usable reports whether h may serve the agent mac at addr, in the
// subnet home, now: not the agent itself, live, neither bad nor resting
// for that subnet. Called with c.mu held.
func (c *Coordinator) usable(h *holder, mac string, addr netip.Addr, home netip.Prefix, now time.Time) bool {
	return h.mac != mac && h.addr != addr && !c.bad[h.mac] && c.live(h, now) &&
		!now.Before(h.rest[home]) && !now.Before(h.rest[netip.Prefix{}])
}

// belowCap reports whether h has an upload to spare, dropping its ended
// leases. Called with c.mu held.
func (c *Coordinator) belowCap(h *holder, now time.Time) bool {
	live := h.leases[:0]
	for _, end := range h.leases {
		if now.Before(end) {
			live = append(live, end)
		}
	}
	h.leases = live
	return len(live) < c.uploads()
}

// holds reports whether the bitmap has any of the positions.
func holds(have agentapi.Bitmap, pos []int32) bool {
	for _, p := range pos {
		if have.Has(int(p)) {
			return true
		}
	}
	return false
}

// sweep forgets the holders not heard from for TTL, at most once per
// TTL. Called with c.mu held.
func (c *Coordinator) sweep(now time.Time) {
	if now.Sub(c.swept) < c.ttl() {
		return
	}
	c.swept = now
	for sha, im := range c.images {
		for mac, h := range im.holders {
			if !c.live(h, now) {
				delete(im.holders, mac)
			}
		}
		if len(im.holders) == 0 {
			delete(c.images, sha)
		}
	}
}

// subnet is the requester's subnet; invalid for an invalid address.
func (c *Coordinator) subnet(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	bits := 64
	if a.Is4() {
		bits = 24
		if c.SubnetBits > 0 && c.SubnetBits <= 32 {
			bits = c.SubnetBits
		}
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

func (c *Coordinator) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Coordinator) rand(n int) int {
	if c.Rand != nil {
		return c.Rand(n)
	}
	return rand.IntN(n)
}

func (c *Coordinator) ttl() time.Duration { return orDefault(c.TTL, 15*time.Second) }

// lease is how long an upload of stored bytes is counted.
func (c *Coordinator) lease(stored int64) time.Duration {
	rate := c.UploadRate
	if rate <= 0 {
		rate = 32 << 20
	}
	return max(time.Duration(float64(stored)/float64(rate)*float64(time.Second)), time.Millisecond)
}
func (c *Coordinator) rest() time.Duration { return orDefault(c.Rest, 30*time.Second) }
func (c *Coordinator) pending() time.Duration {
	return orDefault(c.Pending, 5*time.Second)
}
func (c *Coordinator) uploads() int {
	if c.Uploads > 0 {
		return c.Uploads
	}
	return 4
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
