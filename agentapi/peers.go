package agentapi

import (
	"fmt"
	"math/bits"
	"strings"
)

// Peer distribution (docs/DESIGN.md, "Peer distribution"): installing
// agents serve each other the chunks of a chunked image they have on
// their disks, verified; the appliance says who holds what.
const (
	// PathHoldings is the agent API path of Holdings (POST, answered
	// with HoldingsReply).
	PathHoldings = "/api/agent/holdings"
	// PeerChunks is the path of an agent's chunk server: the chunk
	// whose SHA-256 is ID is ChunkURL("http://IP:PORT"+PeerChunks, ID),
	// the store's own naming (XXXX/ID.zst).
	PeerChunks = "/chunks"
	// ParamPeers in a chunk request's query says the agent takes a
	// redirect (307) to a peer and fetches from the peer itself, with
	// its own short timeout; its value is the SHA-256 of the image the
	// agent installs (the plan's Image.SHA256), whose holders the
	// appliance picks among. The appliance redirects no request
	// without it: an agent that does not speak the protocol, its
	// fallback after a peer failed, or any other client gets the bytes.
	ParamPeers = "peers"
	// ParamWhere, with ParamPeers, asks the appliance where the chunks
	// it names (ids, comma-separated, at most MaxChunkBatch) are to be
	// fetched: the answer is ChunkPlaces. The agent then fetches the
	// peers' chunks from them and the rest in one batch (ChunksURL).
	ParamWhere = "where"
	// MaxHoldingsBody bounds a Holdings body: the bitmap of an image of
	// 16 Mi chunks (1 TiB) in base64, and the rest.
	MaxHoldingsBody = 3<<20 + 64<<10
	// MaxPeerFailures bounds Holdings.Failed.
	MaxPeerFailures = 64
)

// Holdings is the body of POST /api/agent/holdings: which chunks of the
// image it installs the agent has on its disk, verified, and where it
// serves them.
type Holdings struct {
	// Image is the SHA-256 of the image being installed (the plan's
	// Image.SHA256 of a chunked image), naming the index Have is over.
	Image string `json:"image"`
	// Port is the TCP port of the agent's chunk server, on the address
	// the appliance sees the report come from (an agent cannot name
	// another host). 0 means it serves nothing: Have is then ignored.
	Port int `json:"port,omitempty"`
	// Have is a bitmap over the index's chunks, in index order.
	Have Bitmap `json:"have"`
	// Failed names the peers that failed this agent since its last
	// report, at most MaxPeerFailures.
	Failed []PeerFailure `json:"failed,omitempty"`
}

// PeerFailure is a peer that failed an agent.
type PeerFailure struct {
	// Peer is the peer's base URL as the redirect named it
	// ("http://IP:PORT").
	Peer string `json:"peer"`
	// Bad is true when the peer served bytes that did not verify (it is
	// not asked again), false when it did not answer in time, refused
	// or broke off (it is rested for a while).
	Bad bool `json:"bad,omitempty"`
}

// HoldingsReply answers Holdings.
type HoldingsReply struct {
	// Serve false tells the agent to stop its reports and its chunk
	// server now. rackboot serve answers true while peer distribution
	// is on (off, the path is a 404, which stops them too); the end of
	// a wave is told by Installing, in the answer to the last report.
	Serve bool `json:"serve"`
	// IntervalMS is how long the agent waits before its next report.
	IntervalMS int `json:"interval_ms"`
	// Installing is how many other agents install the same image now.
	// In the answer to the agent's last report, before its done, none
	// means the wave has ended: it need not linger to serve.
	Installing int `json:"installing"`
}

// ChunkPlaces answers a ParamWhere request.
type ChunkPlaces struct {
	// Peers holds, for each chunk asked for, in order, the base URL of
	// the peer to fetch it from ("http://IP:PORT"), "" for the
	// appliance, or PlaceLater.
	Peers []string `json:"peers"`
}

// PlaceLater in ChunkPlaces says: no peer can serve the chunk now, but
// one will soon (the appliance has just sent it to a peer, or its
// holders are at their upload cap); ask again after other chunks. It
// spares the appliance's link, which would otherwise send a chunk once
// per machine at the start of a wave. An agent asks for a deferred
// chunk without where once it has waited long enough.
const PlaceLater = "later"

// WhereURL is the URL of a ParamWhere request for the chunks ids of the
// store at base, for the image whose SHA-256 is image.
func WhereURL(base string, ids []string, image string) string {
	path, query, _ := strings.Cut(base, "?")
	u := strings.TrimSuffix(path, "/") + "?" + ParamWhere + "=" + strings.Join(ids, ",") + "&" + ParamPeers + "=" + image
	if query != "" {
		u += "&" + query
	}
	return u
}

// Bitmap is a set of chunk positions: bit i is byte i/8, mask
// 0x80>>(i%8). A bitmap over n chunks is (n+7)/8 bytes long and its
// bits past n are clear. In JSON it is base64, as every []byte.
type Bitmap []byte

// NewBitmap returns an empty bitmap over n chunks.
func NewBitmap(n int) Bitmap { return make(Bitmap, (n+7)/8) }

// Has reports whether bit i is set; false outside the bitmap.
func (b Bitmap) Has(i int) bool {
	return i >= 0 && i/8 < len(b) && b[i/8]&(0x80>>(i%8)) != 0
}

// Set sets bit i, which must be inside the bitmap.
func (b Bitmap) Set(i int) { b[i/8] |= 0x80 >> (i % 8) }

// Clear clears bit i, which must be inside the bitmap.
func (b Bitmap) Clear(i int) { b[i/8] &^= 0x80 >> (i % 8) }

// Count is the number of bits set.
func (b Bitmap) Count() int {
	n := 0
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return n
}

// Check reports whether b is a bitmap over n chunks: its length, and no
// bit set past n.
func (b Bitmap) Check(n int) error {
	if n < 0 || len(b) != (n+7)/8 {
		return fmt.Errorf("agentapi: a bitmap of %d bytes over %d chunks, want %d", len(b), n, (max(n, 0)+7)/8)
	}
	if r := n % 8; r != 0 && b[len(b)-1]&(0xff>>r) != 0 {
		return fmt.Errorf("agentapi: bits set past chunk %d", n)
	}
	return nil
}
