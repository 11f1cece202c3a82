package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/registry"
)

// Peers is peer distribution's coordinator as the agent API feeds it
// (docs/DESIGN.md, "Peer distribution"). The daemon's wiring implements
// it with peers.Coordinator. Implementations must be safe for
// concurrent use.
type Peers interface {
	// Hold records the holdings report of the agent of mac, received
	// from addr, and says when it should report again and whether it
	// should go on serving. An error wrapping ErrBadHoldings refuses
	// the report (a 400 with its message: it does not fit the published
	// index); any other is the appliance's failure (a 500).
	Hold(mac string, addr netip.Addr, h agentapi.Holdings) (agentapi.HoldingsReply, error)
	// Finished says the install of mac ended well: its token is spent,
	// its agent reports no more holdings and serves for a bounded
	// linger.
	Finished(mac string)
	// Forget drops what mac holds: its install failed, or a new one
	// starts writing its disk.
	Forget(mac string)
}

// peersEnded tells Peers, if set, that the install of mac ended, well
// or not.
func (s *Server) peersEnded(mac string, installed bool) {
	switch {
	case s.Peers == nil:
	case installed:
		s.Peers.Finished(mac)
	default:
		s.Peers.Forget(mac)
	}
}

// ErrBadHoldings marks a holdings report Peers refuses.
var ErrBadHoldings = errors.New("api: holdings refused")

// reportHoldings takes an agent's holdings report for the image its
// running attempt installs.
func (s *Server) reportHoldings(w http.ResponseWriter, r *http.Request, a agentRequest) {
	if s.Peers == nil {
		writeError(w, http.StatusNotFound, "peer distribution is off")
		return
	}
	b, ok := readBody(w, r, agentapi.MaxHoldingsBody)
	if !ok {
		return
	}
	h, err := decodeHoldings(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c := a.host.Current
	if a.host.State != registry.StateInstalling || c == nil {
		writeError(w, http.StatusConflict, "no install is running: the plan comes first")
		return
	}
	if h.Image != c.ImageSHA256 {
		writeError(w, http.StatusConflict, fmt.Sprintf("the report is of image %s; this attempt installs %s", h.Image, c.ImageSHA256))
		return
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		writeError(w, http.StatusBadRequest, "no peer address")
		return
	}
	reply, err := s.Peers.Hold(a.host.MAC, ap.Addr().Unmap(), h)
	switch {
	case errors.Is(err, ErrBadHoldings):
		a.log.Warn("holdings refused", "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		a.log.Error("cannot take holdings", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot take the holdings (see the appliance's log)")
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// maxBitmapBytes bounds a holdings bitmap: an image of 16 Mi chunks.
const maxBitmapBytes = 16 << 20 / 8

func decodeHoldings(b []byte) (agentapi.Holdings, error) {
	var h agentapi.Holdings
	if err := decodeStrict(b, &h); err != nil {
		return agentapi.Holdings{}, err
	}
	if _, err := hex.DecodeString(h.Image); err != nil || len(h.Image) != 64 || strings.ToLower(h.Image) != h.Image {
		return agentapi.Holdings{}, errors.New("image must be 64 lower-case hex digits")
	}
	if h.Port < 0 || h.Port > 65535 {
		return agentapi.Holdings{}, errors.New("port must be 0 to 65535")
	}
	if len(h.Have) > maxBitmapBytes {
		return agentapi.Holdings{}, fmt.Errorf("a bitmap of %d bytes, at most %d", len(h.Have), maxBitmapBytes)
	}
	if len(h.Failed) > agentapi.MaxPeerFailures {
		return agentapi.Holdings{}, fmt.Errorf("%d peer failures, at most %d", len(h.Failed), agentapi.MaxPeerFailures)
	}
	for _, f := range h.Failed {
		ap, err := netip.ParseAddrPort(strings.TrimPrefix(f.Peer, "http://"))
		if err != nil || len(f.Peer) > 64 || ap.Addr().Zone() != "" || "http://"+ap.String() != f.Peer {
			return agentapi.Holdings{}, fmt.Errorf("peer %q is not http://IP:PORT", printable(f.Peer, 64))
		}
	}
	return h, nil
}
