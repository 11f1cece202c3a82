package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// plan serves the agent its plan; the first fetch starts the attempt. A
// plan that cannot be built fails the attempt at once (counted like any
// other), and the agent gets the reason with a 409: its token is spent, it
// should show the reason and reboot.
func (s *Server) plan(w http.ResponseWriter, r *http.Request, a agentRequest) {
	host, v, p, err := s.buildPlan(r, a)
	if err != nil {
		msg := err.Error()
		a.log.Warn("no plan for agent", "phase", "plan", "err", msg)
		if _, ferr := s.Registry.Fail(r.Context(), a.mac, a.token, registry.Report{Phase: "plan", Error: msg}); ferr != nil && !errors.Is(ferr, registry.ErrUnauthorized) {
			a.log.Error("cannot record the failed attempt", "err", ferr)
		}
		writeError(w, http.StatusConflict, msg)
		return
	}
	b, err := json.Marshal(p)
	if err != nil {
		a.log.Error("cannot encode plan", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot encode the plan")
		return
	}
	sum := sha256.Sum256(b)
	ver := registry.Version{Name: v.Name, Number: v.Number}
	att, err := s.Registry.Start(r.Context(), a.mac, a.token, registry.Install{Version: ver, ImageSHA256: imageSHA(p), ImageRawSize: imageRawSize(p), ProfileDigest: hex.EncodeToString(sum[:])})
	if !s.registryOK(w, a, err) {
		return
	}
	a.log.Info("plan served", "attempt", att.Number, "version", ver.Name)
	// The disk is about to be written: what it held is not to be served.
	s.peersEnded(a.host.MAC, false)
	writeJSON(w, http.StatusOK, agentapi.PlanResponse{Host: host.Hostname, MAC: a.mac.String(), Attempt: att.Number, AttemptID: att.ID,
		Version: agentapi.Version{Name: ver.Name, Number: ver.Number}, Plan: p})
}

// buildPlan plans the version the attempt installs: the running attempt's
// (a second fetch gets the same version even if the profiles changed), the
// reinstall override, or the profile's; with the version the host runs,
// for a chunked image's seed.
func (s *Server) buildPlan(r *http.Request, a agentRequest) (*profiles.Host, *profiles.Version, agentapi.Plan, error) {
	host, ok := s.Fleet.Lookup(a.mac)
	if !ok {
		return nil, nil, agentapi.Plan{}, errors.New("the host is no longer in the profiles")
	}
	name := a.host.PendingVersion
	if a.host.Current != nil && a.host.Current.Version.Name != "" {
		name = a.host.Current.Version.Name
	}
	// A version whose image failed the appliance's check is not started
	// (its hosts are held at PXE boot; this is an agent that got its
	// token before the check failed).
	if s.Held != nil && a.host.State == registry.StatePending {
		if why := s.Held(a.mac, a.host.PendingVersion); why != "" {
			return nil, nil, agentapi.Plan{}, errors.New("held, nothing is written: " + why)
		}
	}
	v := host.Version
	if name != "" {
		if v, ok = s.Fleet.Version(name); !ok {
			return nil, nil, agentapi.Plan{}, fmt.Errorf("version %q is not in the catalog", name)
		}
	}
	// What the disk holds, as far as the registry knows: a chunked
	// image copies the chunks it shares with it from the disk.
	var installed *profiles.Version
	if n := a.host.Version.Name; n != "" {
		installed, _ = s.Fleet.Version(n)
	}
	base, err := s.base(r)
	if err != nil {
		return nil, nil, agentapi.Plan{}, err
	}
	if s.Planner == nil {
		return nil, nil, agentapi.Plan{}, errors.New("the appliance has no planner (api.Server.Planner)")
	}
	p, err := s.Planner.Plan(host, v, installed, base)
	if err != nil {
		return nil, nil, agentapi.Plan{}, err
	}
	// The permission of `rackboot reinstall --wipe-data`, for this
	// attempt only: never from the profiles.
	p.WipeData = a.host.WipeData()
	return host, v, p, nil
}

func imageSHA(p agentapi.Plan) string {
	if p.Image == nil {
		return ""
	}
	return p.Image.SHA256
}

func imageRawSize(p agentapi.Plan) int64 {
	if p.Image == nil {
		return 0
	}
	return p.Image.RawSize
}

// base is the appliance's URL as the agent reached it.
func (s *Server) base(r *http.Request) (string, error) {
	if s.BaseURL != "" {
		return s.BaseURL, nil
	}
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return "", errors.New("appliance URL unknown: no local address and no BaseURL")
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "", fmt.Errorf("appliance URL unknown: local address %s: %w", a, err)
	}
	port := ap.Port()
	if s.ArtifactsPort != 0 {
		port = uint16(s.ArtifactsPort)
	}
	// A dual-stack listener reports IPv4 as ::ffff:a.b.c.d.
	return "http://" + netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), port).String(), nil
}

// ProgressEvent is the payload of a "progress" event and a host's latest
// progress in its HostView.
type ProgressEvent struct {
	MAC      string `json:"mac"`
	Hostname string `json:"hostname,omitempty"`
	Attempt  int    `json:"attempt"`
	agentapi.Progress
	// ETASeconds estimates the time left, when Total and Rate are known.
	ETASeconds float64 `json:"eta_seconds,omitempty"`
	// At is when the appliance received the report (RFC 3339).
	At string `json:"at"`
}

func (s *Server) reportProgress(w http.ResponseWriter, r *http.Request, a agentRequest) {
	b, ok := readBody(w, r, maxReportBytes)
	if !ok {
		return
	}
	p, err := decodeProgress(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ev := ProgressEvent{MAC: a.host.MAC, Hostname: a.host.Hostname, Attempt: a.host.Attempt, Progress: p, At: s.now()}
	if a.host.State == registry.StatePending {
		ev.Attempt++ // reporting before the plan: the attempt about to start
	}
	if c := a.host.Current; p.Phase == agentapi.PhaseImage && p.Done > 0 && c != nil && c.Writing.IsZero() {
		// The first sign of the agent writing: a success report needs
		// it (registry.Done). Written once per attempt.
		if err := s.Registry.Writing(r.Context(), a.mac, a.token); err != nil && !errors.Is(err, registry.ErrUnauthorized) {
			a.log.Error("cannot record that the agent is writing", "err", err)
		}
	}
	if p.Total > p.Done && p.Rate > 0 {
		ev.ETASeconds = float64(p.Total-p.Done) / p.Rate
	}
	s.progress.set(ev)
	s.publish(Event{Type: EventProgress, MAC: ev.MAC, Data: ev})
	w.WriteHeader(http.StatusNoContent)
}

// LogEvent is the payload of a "log" event: a batch of an attempt's log.
type LogEvent struct {
	MAC       string   `json:"mac"`
	AttemptID int      `json:"attempt_id"`
	Seq       int      `json:"seq"`
	Lines     []string `json:"lines"`
}

func (s *Server) reportLog(w http.ResponseWriter, r *http.Request, a agentRequest) {
	b, ok := readBody(w, r, maxLogBody)
	if !ok {
		return
	}
	l, err := decodeLog(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(l.Lines) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	id, seq, err := s.Registry.AppendLog(r.Context(), a.mac, a.token, l.Lines, l.Again)
	if !s.registryOK(w, a, err) {
		return
	}
	if seq != 0 { // 0: sent again, stored already
		s.publish(Event{Type: EventLog, MAC: a.host.MAC, Data: LogEvent{MAC: a.host.MAC, AttemptID: id, Seq: seq, Lines: l.Lines}})
	}
	w.WriteHeader(http.StatusNoContent)
}

// result answers a final report with the host's new state.
func result(h registry.HostRecord) agentapi.Result {
	return agentapi.Result{State: string(h.State), Attempt: h.Attempt, Reason: h.Reason}
}

func (s *Server) reportDone(w http.ResponseWriter, r *http.Request, a agentRequest) {
	b, ok := readBody(w, r, maxReportBytes)
	if !ok {
		return
	}
	d, err := decodeDone(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h, err := s.Registry.Done(r.Context(), a.mac, a.token, registry.Report{SHA256: d.SHA256, Bytes: d.Bytes, WriteMS: d.DurationMS,
		Written: d.Written, Fetched: d.Fetched, Reused: d.Reused, FetchedPeers: d.FetchedPeers})
	if errors.Is(err, registry.ErrReport) {
		// Not what the machine's own agent sends: refused, the attempt
		// goes on (its agent reports for real, or the machine boots
		// again and the attempt ends).
		a.log.Warn("success report refused", "err", err, "bytes", d.Bytes)
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if errors.Is(err, registry.ErrDigest) {
		s.progress.clear(a.host.MAC)
		s.peersEnded(a.host.MAC, false)
		writeJSON(w, http.StatusConflict, result(h))
		return
	}
	if !s.registryOK(w, a, err) {
		return
	}
	s.progress.clear(a.host.MAC)
	s.peersEnded(a.host.MAC, h.State == registry.StateInstalled)
	writeJSON(w, http.StatusOK, result(h))
}

func (s *Server) reportFailed(w http.ResponseWriter, r *http.Request, a agentRequest) {
	b, ok := readBody(w, r, maxReportBytes)
	if !ok {
		return
	}
	f, err := decodeFailed(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h, err := s.Registry.Fail(r.Context(), a.mac, a.token, registry.Report{Phase: string(f.Phase), Error: f.Error})
	if !s.registryOK(w, a, err) {
		return
	}
	s.progress.clear(a.host.MAC)
	s.peersEnded(a.host.MAC, false)
	writeJSON(w, http.StatusOK, result(h))
}

// registryOK answers a registry error and reports whether there was none.
// The token was valid a moment ago; refused now, a concurrent change (a
// reinstall, a reboot) ended the attempt.
func (s *Server) registryOK(w http.ResponseWriter, a agentRequest, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, registry.ErrUnauthorized):
		a.log.Warn("agent request refused", "err", err)
		unauthorized(w, "invalid or expired install token")
	case errors.Is(err, registry.ErrState):
		writeError(w, http.StatusConflict, err.Error())
	default:
		a.log.Error("registry failure", "err", err)
		writeError(w, http.StatusInternalServerError, "registry unavailable")
	}
	return false
}

// readBody reads a request body of at most max bytes, answering 413 or 400
// itself when it cannot.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", max))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "cannot read the body")
		return nil, false
	}
	return b, true
}
