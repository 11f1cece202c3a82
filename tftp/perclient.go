package tftp

import (
	"context"
	"log/slog"
	"net/netip"
	"time"
)

// client is one address's share of the server, for MaxPerClient.
type client struct {
	active  int       // transfers running
	refused int       // requests refused in the current burst
	logged  time.Time // when the burst was last logged
}

// burstLog is how often a burst of refusals that does not end is logged
// again with its count.
const burstLog = time.Minute

// admit takes one of addr's MaxPerClient transfers. It reports whether the
// request may run and, when it may not, whether this is the first refusal
// of a burst (which is logged; the others are only counted).
func (s *Server) admit(c config, addr netip.Addr) (ok, first bool) {
	if c.maxPerClient == 0 {
		return true, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients == nil {
		s.clients = make(map[netip.Addr]*client)
	}
	cl := s.clients[addr]
	if cl == nil {
		cl = &client{}
		s.clients[addr] = cl
	}
	if cl.active < c.maxPerClient {
		cl.active++
		return true, false
	}
	cl.refused++
	now := time.Now()
	if cl.refused == 1 {
		cl.logged = now
		return false, true
	}
	if now.Sub(cl.logged) >= burstLog {
		cl.logged = now
		c.log.Warn("tftp requests refused: too many transfers from this address",
			"ip", addr.String(), "refused", cl.refused, "max_per_client", c.maxPerClient)
	}
	return false, false
}

// leave gives back a transfer taken by admit. When the address has none
// left its burst has ended, and a burst of more than one refusal is logged
// with its count (the first refusal had its own line).
func (s *Server) leave(c config, addr netip.Addr) {
	if c.maxPerClient == 0 {
		return
	}
	s.mu.Lock()
	cl := s.clients[addr]
	cl.active--
	if cl.active > 0 {
		s.mu.Unlock()
		return
	}
	delete(s.clients, addr)
	refused := cl.refused
	s.mu.Unlock()
	if refused > 1 {
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "tftp requests refused: too many transfers from this address",
			slog.String("ip", addr.String()), slog.Int("refused", refused), slog.Int("max_per_client", c.maxPerClient))
	}
}
