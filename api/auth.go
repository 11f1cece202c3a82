package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// bearer returns the token of an "Authorization: Bearer TOKEN" header.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// unauthorized answers 401 with a fixed message: why a token was refused
// goes to the log, never to the client.
func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="rackboot"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// admin guards an admin handler with the admin token. Digests are
// compared, in constant time, so neither the token's bytes nor its length
// leak through timing.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok || s.AdminToken == "" {
			unauthorized(w, "admin token required")
			return
		}
		got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(s.AdminToken))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.log().Warn("admin request refused", "ip", remoteIP(r), "path", r.URL.Path, "err", "wrong token")
			unauthorized(w, "admin token required")
			return
		}
		h(w, r)
	}
}

// agentRequest is an authenticated agent request.
type agentRequest struct {
	mac   net.HardwareAddr
	token string
	host  registry.HostRecord // as authenticated
	log   *slog.Logger
}

// agent guards an agent handler with the install token of the MAC the
// request names.
func (s *Server) agent(h func(http.ResponseWriter, *http.Request, agentRequest)) http.HandlerFunc {
	return s.agentWith(func(ctx context.Context, mac net.HardwareAddr, tok string) (registry.HostRecord, error) {
		return s.Registry.Authenticate(ctx, mac, tok)
	}, h)
}

// agentWith is agent with the registry's check of the token given: the
// final reports' also take the token of the report just accepted, sent
// again (registry.Registry.AuthenticateDone, AuthenticateFailed).
func (s *Server) agentWith(authenticate func(context.Context, net.HardwareAddr, string) (registry.HostRecord, error),
	h func(http.ResponseWriter, *http.Request, agentRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		log := s.log().With("ip", remoteIP(r), "path", r.URL.Path)
		tok, ok := bearer(r)
		if !ok {
			unauthorized(w, "install token required")
			return
		}
		mac, err := profiles.ParseMAC(r.Header.Get(agentapi.MACHeader))
		if err != nil {
			unauthorized(w, "install token required, with the "+agentapi.MACHeader+" header")
			return
		}
		log = log.With("mac", mac.String())
		if s.VerifyAgent != nil {
			if err := s.VerifyAgent(r, mac); err != nil {
				// Before the token is looked at: a stranger learns
				// nothing, not even whether a token would pass.
				log.Warn("agent request not from the machine it names", "err", err)
				writeError(w, http.StatusForbidden, "this request did not come from the machine it names (see the appliance's log)")
				return
			}
		}
		rec, err := authenticate(r.Context(), mac, tok)
		if errors.Is(err, registry.ErrUnauthorized) {
			log.Warn("agent request refused", "err", err)
			unauthorized(w, "invalid or expired install token")
			return
		}
		if err != nil {
			log.Error("cannot authenticate agent", "err", err)
			writeError(w, http.StatusInternalServerError, "registry unavailable")
			return
		}
		h(w, r, agentRequest{mac: mac, token: tok, host: rec, log: log})
	}
}
