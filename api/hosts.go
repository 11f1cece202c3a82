package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/rollout"
)

// HostView is a host as the admin API shows it: its record (without the
// token digest), whether and how the profiles know it, and its latest
// progress while it installs.
type HostView struct {
	registry.HostRecord
	// InProfiles reports whether the MAC is in the current profiles.
	InProfiles bool              `json:"in_profiles"`
	Labels     map[string]string `json:"labels,omitempty"`
	// ProfileVersion is the version the profiles give the host now: what
	// a reinstall would install, unless overridden.
	ProfileVersion *registry.Version `json:"profile_version,omitempty"`
	Progress       *ProgressEvent    `json:"progress,omitempty"`
	// Held says why a pending host is not given its installer now (its
	// version's image is missing or not what the catalog says: Server.
	// Held), "" when it is not held.
	Held string `json:"held,omitempty"`
	// BMC says where the host's BMC is ("ipmi 10.0.9.11:623"), "" when
	// its profile names none; never its credential.
	BMC string `json:"bmc,omitempty"`
	// LastPower is the newest of the record's power actions. A host's
	// own view (GET /api/hosts/{mac}) has them all in power; a list has
	// only this one, so that a page stays small.
	LastPower *registry.PowerAction `json:"last_power,omitempty"`
	// Rollout is the running, paused or halted staged rollout the host
	// is in, and where: "r2 wave 2/3: installing".
	Rollout string `json:"rollout,omitempty"`
}

// view joins a record (nil: none) and a profile host (nil: none). A host
// of the profiles without a record is pending: it installs at its first
// PXE boot. A discovered host that was since added to the profiles is
// pending too; its record follows at its next boot.
func (s *Server) view(rec *registry.HostRecord, host *profiles.Host) HostView {
	var v HostView
	if rec != nil {
		v.HostRecord = *rec
	} else {
		v.HostRecord = registry.HostRecord{MAC: profiles.MACKey(host.MAC), State: registry.StatePending, Reason: "in the profiles, not seen yet"}
	}
	// No digest of an install token leaves the appliance, not even of
	// a spent one.
	v.Token, v.DoneToken, v.FailedToken = nil, nil, nil
	if host != nil {
		v.InProfiles = true
		v.Labels = host.Labels
		if v.Hostname == "" {
			v.Hostname = host.Hostname
		}
		v.BMC = host.BMC.String()
		if host.Version != nil {
			v.ProfileVersion = &registry.Version{Name: host.Version.Name, Number: host.Version.Number}
		}
		if v.State == registry.StateDiscovered {
			v.State = registry.StatePending
		}
	}
	if v.State == registry.StatePending && host != nil && s.Held != nil {
		v.Held = s.Held(host.MAC, v.PendingVersion)
	}
	if p, ok := s.progress.get(v.MAC); ok && v.State == registry.StateInstalling && p.Attempt == v.Attempt {
		v.Progress = &p
	}
	return v
}

// fleetViews is every host known to the registry or the profiles, ordered
// by MAC.
func (s *Server) fleetViews(ctx context.Context) ([]HostView, error) {
	recs, err := s.Registry.Store.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(recs))
	views := make([]HostView, 0, len(recs))
	for i := range recs {
		host, _ := s.Fleet.Lookup(macOf(recs[i].MAC))
		views = append(views, s.view(&recs[i], host))
		seen[recs[i].MAC] = true
	}
	for _, h := range s.Fleet.Hosts() {
		if !seen[profiles.MACKey(h.MAC)] {
			views = append(views, s.view(nil, h))
		}
	}
	slices.SortFunc(views, func(a, b HostView) int { return strings.Compare(a.MAC, b.MAC) })
	in := s.inRollouts(ctx)
	for i := range views {
		views[i].Rollout = in[views[i].MAC]
	}
	return views, nil
}

// inRollouts says, per MAC, where each host of an active rollout is.
func (s *Server) inRollouts(ctx context.Context) map[string]string {
	if s.Rollouts == nil {
		return nil
	}
	all, err := s.Rollouts.List(ctx)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, ro := range all {
		if !ro.Status.Active() {
			continue
		}
		for _, h := range ro.Hosts {
			where := fmt.Sprintf("%s wave %d/%d: %s", ro.ID, h.Wave+1, len(ro.Waves), h.Result)
			if ro.Status != rollout.StatusRunning {
				where += " (rollout " + string(ro.Status) + ")"
			}
			out[h.MAC] = where
		}
	}
	return out
}

// lastPower is the newest of a record's power actions, or nil.
func lastPower(p []registry.PowerAction) *registry.PowerAction {
	if len(p) == 0 {
		return nil
	}
	last := p[len(p)-1]
	return &last
}

func macOf(s string) []byte {
	hw, _ := profiles.ParseMAC(s)
	return hw
}

// hostFilter selects hosts for listing and reinstall. Zero fields select
// everything.
type hostFilter struct {
	state       registry.State
	versionLess *int // installed version number below this
	labels      map[string]string
}

// versionBelow reports whether v runs a known version numbered below n.
// A host with no installed version runs nothing vulnerable and is not
// selected.
func versionBelow(v HostView, n int) bool {
	return !v.Version.IsZero() && v.Version.Number < n
}

func (f hostFilter) match(v HostView) bool {
	if f.state != "" && v.State != f.state {
		return false
	}
	if f.versionLess != nil && !versionBelow(v, *f.versionLess) {
		return false
	}
	for k, want := range f.labels {
		if got, ok := v.Labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// parseFilter reads ?state=&version_below=&label=k=v (label repeatable).
func parseFilter(q url.Values) (hostFilter, error) {
	var f hostFilter
	for k := range q {
		switch k {
		case "state", "version_below", "label":
		default:
			return f, fmt.Errorf("unknown parameter %.32q", k)
		}
	}
	if s := q.Get("state"); s != "" {
		if f.state = registry.State(s); !f.state.Valid() {
			return f, errors.New("state: want discovered, pending, installing, installed or failed")
		}
	}
	if s := q.Get("version_below"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return f, errors.New("version_below: want a version number")
		}
		f.versionLess = &n
	}
	for _, l := range q["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return f, errors.New("label: want KEY=VALUE")
		}
		if f.labels == nil {
			f.labels = map[string]string{}
		}
		f.labels[k] = v
	}
	return f, nil
}

// Page sizes of GET /api/hosts. A page of 500 host views is about 250 KB of
// JSON; the maximum bounds what one request makes the daemon build.
const (
	DefaultPageSize = 500
	MaxPageSize     = 5000
)

// listHosts answers the hosts matching the filter, ordered by MAC, a page
// at a time: ?limit=N (default DefaultPageSize, at most MaxPageSize) hosts
// after the MAC ?after=. When more follow, the Link header (RFC 8288) names
// the next page with rel="next"; the body stays a JSON array.
func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, after, err := parsePage(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q.Del("limit")
	q.Del("after")
	f, err := parseFilter(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	views, err := s.fleetViews(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := []HostView{}
	more := false
	for _, v := range views {
		if after != "" && v.MAC <= after || !f.match(v) {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		v.LastPower, v.Power = lastPower(v.Power), nil
		out = append(out, v)
	}
	if more {
		q.Set("after", out[len(out)-1].MAC)
		q.Set("limit", strconv.Itoa(limit))
		w.Header().Set("Link", "</api/hosts?"+q.Encode()+">; rel=\"next\"")
	}
	writeJSON(w, http.StatusOK, out)
}

// parsePage reads ?limit=&after=.
func parsePage(q url.Values) (limit int, after string, err error) {
	limit = DefaultPageSize
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxPageSize {
			return 0, "", fmt.Errorf("limit: want 1 to %d", MaxPageSize)
		}
		limit = n
	}
	if a := q.Get("after"); a != "" {
		hw, err := profiles.ParseMAC(a)
		if err != nil {
			return 0, "", errors.New("after: want a MAC address")
		}
		after = profiles.MACKey(hw)
	}
	return limit, after, nil
}

// forgetHosts forgets the discovered records: DELETE /api/hosts?state=
// discovered, the only state this path removes. Hosts of the profiles and
// records with history are kept. It answers {"forgotten": N}.
func (s *Server) forgetHosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if len(q) != 1 || q.Get("state") != string(registry.StateDiscovered) {
		writeError(w, http.StatusBadRequest, "only ?state=discovered can be forgotten")
		return
	}
	n, err := s.Registry.ForgetDiscovered(r.Context(), func(mac string) bool {
		_, known := s.Fleet.Lookup(macOf(mac))
		return known
	})
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	s.log().Info("discovered records forgotten", "ip", remoteIP(r), "forgotten", n)
	writeJSON(w, http.StatusOK, ForgetResult{Forgotten: n})
}

// ForgetResult is the answer of DELETE /api/hosts?state=discovered.
type ForgetResult struct {
	Forgotten int `json:"forgotten"`
}

// lookup finds the host of the {mac} path segment, answering 400 or 404
// itself when there is none.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (HostView, bool) {
	hw, err := profiles.ParseMAC(r.PathValue("mac"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "not a MAC address")
		return HostView{}, false
	}
	host, known := s.Fleet.Lookup(hw)
	rec, err := s.Registry.Store.Host(r.Context(), hw.String())
	switch {
	case err == nil:
		v := s.view(&rec, host)
		v.LastPower = lastPower(v.Power)
		v.Rollout = s.inRollouts(r.Context())[v.MAC]
		return v, true
	case !errors.Is(err, registry.ErrNotFound):
		s.storeError(w, r, err)
		return HostView{}, false
	case known:
		return s.view(nil, host), true
	}
	writeError(w, http.StatusNotFound, "no such host: "+hw.String())
	return HostView{}, false
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) {
	if v, ok := s.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, v)
	}
}

// history answers the host's attempts, oldest first; ?log=1 adds each
// attempt's log.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	v, ok := s.lookup(w, r)
	if !ok {
		return
	}
	hist, err := s.Registry.Store.History(r.Context(), v.MAC)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if r.URL.Query().Get("log") == "1" {
		for i := range hist {
			t, err := s.Registry.Store.Log(r.Context(), v.MAC, hist[i].ID, 0)
			if err != nil {
				s.storeError(w, r, err)
				return
			}
			hist[i].Log = t.Lines
		}
	}
	writeJSON(w, http.StatusOK, hist)
}

// VersionCount is one line of GET /api/versions. The line of the hosts
// that run no version rackboot installed has the zero Version (name "",
// number 0) and comes last.
type VersionCount struct {
	registry.Version
	Count int      `json:"count"`
	MACs  []string `json:"macs"`
}

// versions answers, per installed version ordered by number, how many
// machines run it and which, then the machines that run none: every host
// of GET /api/hosts is counted once, so that the CLI's table and its
// --json say the same.
func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	views, err := s.fleetViews(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	byVersion := map[registry.Version]*VersionCount{}
	out := []VersionCount{}
	var none VersionCount
	for _, v := range views {
		if v.Version.IsZero() {
			none.Count++
			none.MACs = append(none.MACs, v.MAC)
			continue
		}
		c := byVersion[v.Version]
		if c == nil {
			c = &VersionCount{Version: v.Version}
			byVersion[v.Version] = c
		}
		c.Count++
		c.MACs = append(c.MACs, v.MAC)
	}
	for _, c := range byVersion {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b VersionCount) int {
		if a.Number != b.Number {
			return a.Number - b.Number
		}
		return strings.Compare(a.Name, b.Name)
	})
	if none.Count > 0 {
		out = append(out, none)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	s.log().Error("registry failure", "ip", remoteIP(r), "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "registry unavailable")
}
