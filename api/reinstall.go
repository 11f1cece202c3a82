package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// maxByBytes bounds the "by" of a reinstall request: a name, not a text.
const maxByBytes = 64

// ReinstallRequest is the body of POST /api/reinstall. The hosts are MACs,
// plus every host matching all of Selector (labels) and VersionBelow when
// either is given. At least one of the three is required.
type ReinstallRequest struct {
	MACs         []string          `json:"macs,omitempty"`
	Selector     map[string]string `json:"selector,omitempty"`
	VersionBelow *int              `json:"version_below,omitempty"`
	// Reason is recorded with the request and each attempt it causes.
	Reason string `json:"reason,omitempty"`
	// Version overrides the profiles' version for these installs (a
	// canary); it must be in the catalog.
	Version string `json:"version,omitempty"`
	// By names who asks (the CLI sends the user's login name); the
	// record says "BY via admin API from IP".
	By string `json:"by,omitempty"`
	// DryRun answers which hosts would be reinstalled, changing nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// WipeData lets the first install attempt of each host destroy the
	// partitions earlier installs preserved that its layout no longer
	// keeps as they are (agentapi.Plan.WipeData); without it the agent
	// refuses such a layout. It needs a Reason, recorded with the
	// request and the attempt.
	WipeData bool `json:"wipe_data,omitempty"`
	// PowerCycle sets a one-time network boot and power-cycles each
	// host marked pending through its BMC, paced by StaggerMS and
	// Concurrency (PowerRequest's): the reinstall starts now, not at
	// the machine's next reboot. Every host must have a BMC; otherwise
	// nothing is marked.
	PowerCycle  bool   `json:"power_cycle,omitempty"`
	StaggerMS   *int64 `json:"stagger_ms,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`
}

// ReinstallResponse lists what a reinstall request did.
type ReinstallResponse struct {
	// Reinstalled are the MACs now pending (or that would be, with
	// DryRun).
	Reinstalled []string  `json:"reinstalled"`
	Skipped     []Skipped `json:"skipped,omitempty"`
	// Power are the power cycles of a request with power_cycle, per
	// host marked pending.
	Power []PowerResult `json:"power,omitempty"`
}

// Skipped is a host a reinstall request named but could not reinstall.
type Skipped struct {
	MAC    string `json:"mac"`
	Reason string `json:"reason"`
}

const maxReinstallBody = 1 << 20

func (s *Server) reinstall(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r, maxReinstallBody)
	if !ok {
		return
	}
	var req ReinstallRequest
	if err := decodeStrict(b, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.Reason = printable(req.Reason, maxErrorBytes)
	if len(req.Selector) == 0 {
		req.Selector = nil // an empty selector must not mean "every host"
	}
	targets, err := s.reinstallTargets(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	views, err := s.fleetViews(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if req.Selector != nil || req.VersionBelow != nil {
		f := hostFilter{labels: req.Selector, versionLess: req.VersionBelow}
		for _, v := range views {
			if f.match(v) && !slices.Contains(targets, v.MAC) {
				targets = append(targets, v.MAC)
			}
		}
	}
	slices.Sort(targets)
	var opt PowerOptions
	if req.PowerCycle {
		if opt, err = s.powerCycleCheck(req, targets); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	resp := ReinstallResponse{Reinstalled: []string{}}
	by := s.by(r, req.By)
	var marked []*profiles.Host
	for _, mac := range targets {
		hw := macOf(mac)
		host, known := s.Fleet.Lookup(hw)
		if !known {
			resp.Skipped = append(resp.Skipped, Skipped{MAC: mac, Reason: "not in the profiles: nothing to install"})
			continue
		}
		if !req.DryRun {
			_, err := s.Registry.Reinstall(r.Context(), hw, registry.ReinstallRequest{Reason: req.Reason, Version: req.Version, By: by, Hostname: host.Hostname, WipeData: req.WipeData})
			if err != nil {
				// Earlier hosts are already pending: say which.
				s.log().Error("reinstall failed", "mac", mac, "err", err)
				resp.Skipped = append(resp.Skipped, Skipped{MAC: mac, Reason: "registry unavailable"})
				continue
			}
		}
		resp.Reinstalled = append(resp.Reinstalled, mac)
		marked = append(marked, host)
	}
	s.log().Info("reinstall request", "ip", remoteIP(r), "hosts", len(resp.Reinstalled), "skipped", len(resp.Skipped),
		"version", req.Version, "reason", req.Reason, "dry_run", req.DryRun, "wipe_data", req.WipeData, "power_cycle", req.PowerCycle)
	if req.PowerCycle && !req.DryRun && len(marked) > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{}) // as in power
		resp.Power = s.Power.Run(r.Context(), marked, PowerCycle, true, opt, by, nil)
	}
	writeJSON(w, http.StatusOK, resp)
}

// powerCycleCheck checks a reinstall with power_cycle before anything is
// marked: power control is on and every host named has a BMC.
func (s *Server) powerCycleCheck(req ReinstallRequest, targets []string) (PowerOptions, error) {
	opt, err := powerOptions(req.StaggerMS, req.Concurrency)
	if err != nil {
		return opt, err
	}
	if s.Power == nil {
		return opt, errors.New("power_cycle: power control is not configured on this appliance; nothing was marked")
	}
	var without []string
	for _, mac := range targets {
		if h, ok := s.Fleet.Lookup(macOf(mac)); ok && h.BMC == nil {
			name := mac
			if h.Hostname != "" {
				name = h.Hostname + " (" + mac + ")"
			}
			without = append(without, name)
		}
	}
	if len(without) > 0 {
		return opt, fmt.Errorf("power_cycle: no bmc in the profile of %s; nothing was marked", strings.Join(without, ", "))
	}
	return opt, nil
}

// reinstallTargets checks the request and returns its MACs, canonical.
func (s *Server) reinstallTargets(req ReinstallRequest) ([]string, error) {
	if len(req.MACs) == 0 && req.Selector == nil && req.VersionBelow == nil {
		return nil, errors.New("name hosts: macs, selector or version_below")
	}
	if req.WipeData && strings.TrimSpace(req.Reason) == "" {
		return nil, errors.New("wipe_data destroys preserved data: give a reason, recorded with the request")
	}
	if req.Version != "" {
		if _, ok := s.Fleet.Version(req.Version); !ok {
			return nil, fmt.Errorf("version %q is not in the catalog", req.Version)
		}
	}
	var macs []string
	for _, m := range req.MACs {
		hw, err := profiles.ParseMAC(m)
		if err != nil {
			return nil, fmt.Errorf("macs: %.40q is not a MAC address", m)
		}
		if !slices.Contains(macs, hw.String()) {
			macs = append(macs, hw.String())
		}
	}
	return macs, nil
}
