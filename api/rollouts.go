package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/rollout"
)

// RolloutRequest is the body of POST /api/rollouts: move a selection of
// hosts to Version in waves (docs/DESIGN.md, "Staged rollouts"). The
// selection is MACs plus every host matching all of Selector (labels),
// Channel (the channel of its profile's version) and VersionBelow (its
// installed version's number); at least one is required. Every selected
// host needs a BMC: each wave is power-cycled through them.
type RolloutRequest struct {
	Version      string            `json:"version"`
	MACs         []string          `json:"macs,omitempty"`
	Selector     map[string]string `json:"selector,omitempty"`
	Channel      string            `json:"channel,omitempty"`
	VersionBelow *int              `json:"version_below,omitempty"`
	// Canary is the size of the first wave; WaveSize or WavePercent (of
	// the selection) the size of each later one.
	Canary      int `json:"canary,omitempty"`
	WaveSize    int `json:"wave_size,omitempty"`
	WavePercent int `json:"wave_percent,omitempty"`
	// MaxFailures is how many failed hosts a wave tolerates; one more
	// halts the rollout.
	MaxFailures int `json:"max_failures,omitempty"`
	// WaveTimeoutMS: a host not installed this long after its wave's
	// power cycle has failed (0: 30 minutes). SoakMS: the wait after a
	// healthy wave before the next one.
	WaveTimeoutMS int64  `json:"wave_timeout_ms,omitempty"`
	SoakMS        int64  `json:"soak_ms,omitempty"`
	Reason        string `json:"reason,omitempty"`
	By            string `json:"by,omitempty"`
	// DryRun answers the rollout that would start, with its waves,
	// starting nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// RolloutControl is the body of POST /api/rollouts/{id}/pause, resume and
// abort.
type RolloutControl struct {
	By string `json:"by,omitempty"`
}

const maxRolloutBody = 1 << 20

func (s *Server) startRollout(w http.ResponseWriter, r *http.Request) {
	if s.rolloutsElsewhere(w) {
		return
	}
	if s.Rollouts == nil {
		writeError(w, http.StatusServiceUnavailable, "rollouts are not configured on this appliance")
		return
	}
	b, ok := readBody(w, r, maxRolloutBody)
	if !ok {
		return
	}
	var req RolloutRequest
	if err := decodeStrict(b, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := s.Fleet.Version(req.Version); !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("version %.60q is not in the catalog", req.Version))
		return
	}
	if len(req.Selector) == 0 {
		req.Selector = nil
	}
	if len(req.MACs) == 0 && req.Selector == nil && req.Channel == "" && req.VersionBelow == nil {
		writeError(w, http.StatusBadRequest, "name hosts: macs, selector, channel or version_below")
		return
	}
	if req.WaveTimeoutMS < 0 || req.SoakMS < 0 {
		writeError(w, http.StatusBadRequest, "wave_timeout_ms and soak_ms: want 0 or more")
		return
	}
	hosts, err := s.rolloutHosts(r, req)
	if err != nil {
		s.selectError(w, r, err)
		return
	}
	var macs []string
	var without []string
	for _, h := range hosts {
		macs = append(macs, profiles.MACKey(h.MAC))
		if h.BMC == nil {
			without = append(without, hostName(h))
		}
	}
	if len(macs) == 0 {
		writeError(w, http.StatusBadRequest, "the selection matches no host of the profiles")
		return
	}
	if len(without) > 0 {
		writeError(w, http.StatusBadRequest, "no bmc in the profile of "+strings.Join(without, ", ")+": a rollout power-cycles each wave through the hosts' BMCs")
		return
	}
	spec := rollout.Spec{Version: req.Version, Hosts: macs, Canary: req.Canary, WaveSize: req.WaveSize, WavePercent: req.WavePercent,
		MaxFailures: req.MaxFailures, WaveTimeout: time.Duration(req.WaveTimeoutMS) * time.Millisecond, Soak: time.Duration(req.SoakMS) * time.Millisecond,
		By: s.by(r, req.By), Reason: printable(req.Reason, maxErrorBytes)}
	if req.DryRun {
		waves, err := rollout.Plan(spec)
		if err != nil {
			s.rolloutError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rollout.Rollout{Spec: spec, Waves: waves, Status: "dry-run"})
		return
	}
	ro, err := s.Rollouts.Start(r.Context(), spec)
	if err != nil {
		s.rolloutError(w, err)
		return
	}
	s.log().Info("rollout started", "id", ro.ID, "version", req.Version, "hosts", len(macs), "waves", len(ro.Waves), "by", spec.By)
	writeJSON(w, http.StatusCreated, ro)
}

// hostName names a host for messages: "n1 (52:54:…)" or its MAC.
func hostName(h *profiles.Host) string {
	if h.Hostname != "" {
		return h.Hostname + " (" + profiles.MACKey(h.MAC) + ")"
	}
	return profiles.MACKey(h.MAC)
}

// rolloutHosts resolves a rollout's selection to hosts of the profiles.
// Unlike a reinstall's, a MAC not in the profiles is an error: a rollout
// of a host with nothing to install would fail its wave.
func (s *Server) rolloutHosts(r *http.Request, req RolloutRequest) ([]*profiles.Host, error) {
	hosts, skipped, err := s.selectHosts(r.Context(), req.MACs, nil)
	if err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		return nil, badSelection{fmt.Errorf("%s: not in the profiles", skipped[0].MAC)}
	}
	if req.Selector == nil && req.Channel == "" && req.VersionBelow == nil {
		return hosts, nil
	}
	views, err := s.fleetViews(r.Context())
	if err != nil {
		return nil, err
	}
	f := hostFilter{labels: req.Selector, versionLess: req.VersionBelow}
	for _, v := range views {
		if !f.match(v) || !v.InProfiles {
			continue
		}
		h, ok := s.Fleet.Lookup(macOf(v.MAC))
		if !ok || req.Channel != "" && (h.Version == nil || h.Version.Channel != req.Channel) {
			continue
		}
		if !slices.ContainsFunc(hosts, func(o *profiles.Host) bool { return profiles.MACKey(o.MAC) == v.MAC }) {
			hosts = append(hosts, h)
		}
	}
	slices.SortFunc(hosts, func(a, b *profiles.Host) int { return strings.Compare(profiles.MACKey(a.MAC), profiles.MACKey(b.MAC)) })
	return hosts, nil
}

// rolloutError answers an error of the engine.
func (s *Server) rolloutError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, rollout.ErrSpec):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, rollout.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, rollout.ErrState), errors.Is(err, rollout.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log().Error("rollout request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "rollout store unavailable")
	}
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) {
	if s.rolloutsElsewhere(w) {
		return
	}
	if s.Rollouts == nil {
		writeJSON(w, http.StatusOK, []rollout.Rollout{})
		return
	}
	all, err := s.Rollouts.List(r.Context())
	if err != nil {
		s.rolloutError(w, err)
		return
	}
	if all == nil {
		all = []rollout.Rollout{}
	}
	writeJSON(w, http.StatusOK, all)
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) {
	if s.rolloutsElsewhere(w) {
		return
	}
	if s.Rollouts == nil {
		writeError(w, http.StatusNotFound, "no rollouts on this appliance")
		return
	}
	ro, err := s.Rollouts.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.rolloutError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ro)
}

// controlRollout pauses, resumes or aborts a rollout.
func (s *Server) controlRollout(w http.ResponseWriter, r *http.Request) {
	if s.rolloutsElsewhere(w) {
		return
	}
	if s.Rollouts == nil {
		writeError(w, http.StatusNotFound, "no rollouts on this appliance")
		return
	}
	b, ok := readBody(w, r, maxRolloutBody)
	if !ok {
		return
	}
	var req RolloutControl
	if len(b) > 0 {
		if err := decodeStrict(b, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	id, op, by := r.PathValue("id"), r.PathValue("op"), s.by(r, req.By)
	var ro rollout.Rollout
	var err error
	switch op {
	case "pause":
		ro, err = s.Rollouts.Pause(r.Context(), id, by)
	case "resume":
		ro, err = s.Rollouts.Resume(r.Context(), id, by)
	case "abort":
		ro, err = s.Rollouts.Abort(r.Context(), id, by)
	default:
		writeError(w, http.StatusNotFound, "want pause, resume or abort")
		return
	}
	if err != nil {
		s.rolloutError(w, err)
		return
	}
	s.log().Info("rollout "+op, "id", id, "by", by, "status", ro.Status)
	writeJSON(w, http.StatusOK, ro)
}

// rolloutsElsewhere answers 409 when another appliance drives the
// rollouts, and says whether it did.
func (s *Server) rolloutsElsewhere(w http.ResponseWriter) bool {
	if s.RolloutsElsewhere == nil {
		return false
	}
	why := s.RolloutsElsewhere()
	if why == "" {
		return false
	}
	writeError(w, http.StatusConflict, why)
	return true
}
