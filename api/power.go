package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/rackboot/rackboot/profiles"
)

// Power actions (PowerRequest.Action).
const (
	PowerStatus = "status"
	PowerOn     = "on"
	PowerOff    = "off"
	PowerCycle  = "cycle"
)

// maxStagger bounds a request's stagger: minutes between two machines
// would hold the request for hours.
const maxStagger = 5 * time.Minute

// Power reaches hosts' BMCs (docs/DESIGN.md, "Power"); the appliance
// wires package power, the hosts' credentials and their history behind
// it.
type Power interface {
	// Run does action on every host through the BMC its profile names:
	// with netboot (on and cycle) a one-time network boot is set first.
	// Machines start at least opt.Stagger apart, at most opt.Concurrency
	// at once (zero values: the appliance's defaults); one BMC that fails
	// or hangs never holds up the others beyond its slot. Every on, off
	// and cycle is recorded in the host's history as by. each, if not
	// nil, gets each result as it ends (one call at a time). The results
	// are in hosts' order.
	Run(ctx context.Context, hosts []*profiles.Host, action string, netboot bool, opt PowerOptions, by string, each func(PowerResult)) []PowerResult
}

// PowerOptions pace a power request over many machines.
type PowerOptions struct {
	// Stagger is the least time between two machines' starts (a rack
	// should not draw its inrush current at once); nil means the
	// appliance's default.
	Stagger *time.Duration
	// Concurrency is how many machines at most are handled at once; 0
	// means the appliance's default.
	Concurrency int
}

// PowerRequest is the body of POST /api/power. The hosts are MACs, plus
// every host matching all of Selector (labels).
type PowerRequest struct {
	MACs     []string          `json:"macs,omitempty"`
	Selector map[string]string `json:"selector,omitempty"`
	// Action is status, on, off or cycle.
	Action string `json:"action"`
	// NetBoot sets a one-time boot from the network first (on and cycle
	// only): the machine PXE-boots once, then boots its disk again.
	NetBoot bool `json:"netboot,omitempty"`
	// StaggerMS is the least time between two machines' starts in
	// milliseconds; nil means the appliance's --power-stagger.
	StaggerMS *int64 `json:"stagger_ms,omitempty"`
	// Concurrency caps the machines handled at once; 0 means the
	// appliance's --power-concurrency.
	Concurrency int `json:"concurrency,omitempty"`
	// By names who asks, recorded with each action.
	By string `json:"by,omitempty"`
	// DryRun answers which hosts would be acted on, doing nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// PowerResponse lists what a power request did, per host.
type PowerResponse struct {
	Results []PowerResult `json:"results"`
	// Skipped are named hosts that could not be acted on (not in the
	// profiles).
	Skipped []Skipped `json:"skipped,omitempty"`
}

// PowerResult is the outcome of one host's power action. Error and Kind
// say what failed (never with a credential in it).
type PowerResult struct {
	MAC      string `json:"mac"`
	Hostname string `json:"hostname,omitempty"`
	Action   string `json:"action"`
	NetBoot  bool   `json:"netboot,omitempty"`
	// State is the power state read last: on, off or unknown.
	State string `json:"state"`
	OK    bool   `json:"ok"`
	// Kind classifies a failure: auth, unreachable, timeout, tls, bmc or
	// config (no BMC, no credential).
	Kind     string    `json:"kind,omitempty"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

const maxPowerBody = 1 << 20

// powerOptions checks the pacing fields of a request.
func powerOptions(staggerMS *int64, concurrency int) (PowerOptions, error) {
	var opt PowerOptions
	if staggerMS != nil {
		d := time.Duration(*staggerMS) * time.Millisecond
		if d < 0 || d > maxStagger {
			return opt, fmt.Errorf("stagger_ms: want 0 to %d", maxStagger.Milliseconds())
		}
		opt.Stagger = &d
	}
	if concurrency < 0 || concurrency > 256 {
		return opt, errors.New("concurrency: want 1 to 256 (0: the appliance's default)")
	}
	opt.Concurrency = concurrency
	return opt, nil
}

func (s *Server) power(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r, maxPowerBody)
	if !ok {
		return
	}
	var req PowerRequest
	if err := decodeStrict(b, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch req.Action {
	case PowerStatus, PowerOn, PowerOff, PowerCycle:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("action %.20q: want status, on, off or cycle", req.Action))
		return
	}
	if req.NetBoot && req.Action != PowerOn && req.Action != PowerCycle {
		writeError(w, http.StatusBadRequest, "netboot goes with on or cycle: it sets the device of the next boot")
		return
	}
	opt, err := powerOptions(req.StaggerMS, req.Concurrency)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.Selector) == 0 {
		req.Selector = nil
	}
	if len(req.MACs) == 0 && req.Selector == nil {
		writeError(w, http.StatusBadRequest, "name hosts: macs or selector")
		return
	}
	if s.Power == nil {
		writeError(w, http.StatusServiceUnavailable, "power control is not configured on this appliance")
		return
	}
	hosts, skipped, err := s.selectHosts(r.Context(), req.MACs, req.Selector)
	if err != nil {
		s.selectError(w, r, err)
		return
	}
	resp := PowerResponse{Results: []PowerResult{}, Skipped: skipped}
	by := s.by(r, req.By)
	if req.DryRun {
		for _, h := range hosts {
			resp.Results = append(resp.Results, PowerResult{MAC: profiles.MACKey(h.MAC), Hostname: h.Hostname, Action: req.Action, NetBoot: req.NetBoot, State: "unknown", OK: true})
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	// A staggered rack takes longer than a response may: the work bounds
	// this one.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	resp.Results = s.Power.Run(r.Context(), hosts, req.Action, req.NetBoot, opt, by, nil)
	failed := 0
	for _, res := range resp.Results {
		if !res.OK {
			failed++
		}
	}
	s.log().Info("power request", "ip", remoteIP(r), "action", req.Action, "netboot", req.NetBoot, "hosts", len(hosts), "failed", failed, "by", by)
	writeJSON(w, http.StatusOK, resp)
}

// by is the "who" of an admin request: "NAME via admin API from IP".
func (s *Server) by(r *http.Request, name string) string {
	by := "admin API from " + remoteIP(r)
	if name != "" {
		by = printable(name, maxByBytes) + " via " + by
	}
	return by
}

// badSelection is a selection's own mistake (400), unlike a store that
// cannot be read.
type badSelection struct{ error }

// selectError answers an error of selectHosts or rolloutHosts.
func (s *Server) selectError(w http.ResponseWriter, r *http.Request, err error) {
	var bad badSelection
	if errors.As(err, &bad) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.storeError(w, r, err)
}

// selectHosts resolves MACs and a label selector to hosts of the
// profiles, in MAC order; named MACs not in the profiles are skipped.
func (s *Server) selectHosts(ctx context.Context, macs []string, selector map[string]string) ([]*profiles.Host, []Skipped, error) {
	var keys []string
	for _, m := range macs {
		hw, err := profiles.ParseMAC(m)
		if err != nil {
			return nil, nil, badSelection{fmt.Errorf("macs: %.40q is not a MAC address", m)}
		}
		if k := profiles.MACKey(hw); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if selector != nil {
		views, err := s.fleetViews(ctx)
		if err != nil {
			return nil, nil, err
		}
		f := hostFilter{labels: selector}
		for _, v := range views {
			if f.match(v) && !slices.Contains(keys, v.MAC) {
				keys = append(keys, v.MAC)
			}
		}
	}
	slices.Sort(keys)
	var hosts []*profiles.Host
	var skipped []Skipped
	for _, k := range keys {
		h, ok := s.Fleet.Lookup(macOf(k))
		if !ok {
			skipped = append(skipped, Skipped{MAC: k, Reason: "not in the profiles"})
			continue
		}
		hosts = append(hosts, h)
	}
	return hosts, skipped, nil
}
