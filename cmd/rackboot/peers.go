package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/peers"
	"github.com/rackboot/rackboot/profiles"
)

// peerRoutes joins peer distribution's coordinator (package peers) to
// the agent API, which takes the agents' holdings reports (api.Peers),
// and to the artifacts handler, which asks it where a chunk request
// goes (artifacts.Handler.Redirect): docs/DESIGN.md, "Peer
// distribution". serve mounts it with --peers subnet or all.
type peerRoutes struct {
	coord *peers.Coordinator
	// interval is how often agents report their holdings. Default 500 ms:
	// a chunk a peer wrote is of use to the others only once reported.
	interval time.Duration
	// linger is how long a finished install's holdings stay live (its
	// agent serves as long at most); 0: forgotten at done.
	linger time.Duration
	// where, if set, counts the where-requests Where answers, by
	// status (the artifacts handler counts every other request).
	where func(status int)
}

// newPeerRoutes returns the routes over a coordinator of the chunked
// versions of the catalog versions returns, whose indexes are read from
// the artifacts directory dir.
func newPeerRoutes(dir string, versions func() []*profiles.Version) *peerRoutes {
	return &peerRoutes{linger: 5 * time.Minute, coord: &peers.Coordinator{Index: func(sha string) (*chunkstore.Index, error) {
		return publishedIndex(dir, versions(), sha)
	}}}
}

// publishedIndex reads the index of the catalog's chunked version whose
// image is sha, from the artifacts directory dir.
func publishedIndex(dir string, versions []*profiles.Version, sha string) (*chunkstore.Index, error) {
	for _, v := range versions {
		img := v.Image
		if img.Format != agentapi.FormatChunked || !strings.EqualFold(img.SHA256, sha) || strings.Contains(img.URL, "://") {
			continue
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		f, err := root.Open(img.URL)
		if err != nil {
			return nil, fmt.Errorf("version %s: %w", v.Name, err)
		}
		defer f.Close()
		ix, err := chunkstore.ReadIndex(f)
		if err != nil {
			return nil, fmt.Errorf("version %s: %s: %w", v.Name, img.URL, err)
		}
		return ix, nil
	}
	return nil, fmt.Errorf("%w %.64q: no chunked version of the catalog", peers.ErrUnknownImage, sha)
}

// Hold takes an agent's holdings report (api.Peers).
func (p *peerRoutes) Hold(mac string, addr netip.Addr, h agentapi.Holdings) (agentapi.HoldingsReply, error) {
	if err := p.coord.Hold(mac, addr, h); err != nil {
		if errors.Is(err, peers.ErrUnknownImage) || errors.Is(err, peers.ErrBadHoldings) {
			err = fmt.Errorf("%w: %w", api.ErrBadHoldings, err)
		}
		return agentapi.HoldingsReply{}, err
	}
	interval := p.interval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	return agentapi.HoldingsReply{Serve: true, IntervalMS: int(interval.Milliseconds()), Installing: p.coord.Installing(h.Image, mac)}, nil
}

// Finished keeps a finished install's holdings live for the linger
// (api.Peers).
func (p *peerRoutes) Finished(mac string) {
	if p.linger <= 0 {
		p.coord.Forget(mac)
		return
	}
	p.coord.Finish(mac, p.linger)
}

// Forget drops what an agent holds (api.Peers).
func (p *peerRoutes) Forget(mac string) { p.coord.Forget(mac) }

// Redirect sends a chunk request of an agent that takes redirects (its
// query names the image it installs, agentapi.ParamPeers) to a peer
// that holds the chunk (artifacts.Handler.Redirect); every other
// request is served.
func (p *peerRoutes) Redirect(r *http.Request, name string, mac net.HardwareAddr) (string, bool) {
	image := r.URL.Query().Get(agentapi.ParamPeers)
	if image == "" || mac == nil {
		return "", false
	}
	id, ok := chunkName(name)
	if !ok {
		return "", false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return "", false
	}
	return p.coord.Pick(image, id, peers.Requester{MAC: mac.String(), Addr: ap.Addr().Unmap()})
}

// Where wraps the artifacts handler mounted at prefix ("/artifacts/"):
// it answers an agent's question where a batch of chunks is (GET
// prefix+chunks?where=ID,…&peers=IMAGE, agentapi.ChunkPlaces: a peer
// from Pick for each chunk that has one, else "" for the appliance) and
// hands every other request to next.
func (p *peerRoutes) Where(prefix string, next http.Handler) http.Handler {
	dir := strings.TrimSuffix(prefix, "/") + "/" + profiles.ChunkDir
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Method != http.MethodGet || r.URL.Path != dir || !q.Has(agentapi.ParamWhere) {
			next.ServeHTTP(w, r)
			return
		}
		image := q.Get(agentapi.ParamPeers)
		ids := strings.Split(q.Get(agentapi.ParamWhere), ",")
		if image == "" || len(ids) > agentapi.MaxChunkBatch {
			p.count(http.StatusBadRequest)
			http.Error(w, fmt.Sprintf("where needs peers=IMAGE and at most %d chunk ids", agentapi.MaxChunkBatch), http.StatusBadRequest)
			return
		}
		var req peers.Requester
		if hw, err := net.ParseMAC(q.Get("mac")); err == nil && len(hw) == 6 {
			req.MAC = hw.String()
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			req.Addr = ap.Addr().Unmap()
		}
		chunks := make([]chunkstore.ChunkID, len(ids))
		for i, s := range ids {
			var err error
			if chunks[i], err = chunkstore.ParseChunkID(s); err != nil {
				p.count(http.StatusBadRequest)
				http.Error(w, "a chunk id is 64 hex digits", http.StatusBadRequest)
				return
			}
		}
		places := agentapi.ChunkPlaces{Peers: p.coord.Places(image, chunks, req)}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(places)
		p.count(http.StatusOK)
	})
}

func (p *peerRoutes) count(status int) {
	if p.where != nil {
		p.where(status)
	}
}

// chunkName parses a chunk's name under the artifacts directory,
// chunks/XXXX/ID.zst (chunkstore.ChunkPath).
func chunkName(name string) (chunkstore.ChunkID, bool) {
	rest, ok := strings.CutPrefix(name, profiles.ChunkDir+"/")
	if !ok || len(rest) != 4+1+64+4 || rest[4] != '/' || !strings.HasSuffix(rest, ".zst") {
		return chunkstore.ChunkID{}, false
	}
	id, err := chunkstore.ParseChunkID(rest[5 : 5+64])
	if err != nil || rest[:4] != rest[5:9] || id.IsZero() {
		return chunkstore.ChunkID{}, false
	}
	return id, true
}

var _ api.Peers = (*peerRoutes)(nil)
