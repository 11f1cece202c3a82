package api

import (
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

func macs(views []HostView) []string {
	out := []string{}
	for _, v := range views {
		out = append(out, v.MAC)
	}
	return out
}

// fleetMACs are the example fleet's MACs whose labels include all of sel.
func fleetMACs(set *profiles.Set, sel map[string]string) []string {
	out := []string{}
	for _, h := range set.Hosts() {
		ok := true
		for k, v := range sel {
			ok = ok && h.Labels[k] == v
		}
		if ok {
			out = append(out, profiles.MACKey(h.MAC))
		}
	}
	return out
}

func TestHosts(t *testing.T) {
	e := newEnv(t, nil)
	n01 := e.install(macN01)
	e.install(macN02)
	e.boot(macOut, "efi") // unknown, discovery off: no record

	var all []HostView
	if code := e.admin(http.MethodGet, "/api/hosts", nil, &all); code != http.StatusOK {
		t.Fatalf("hosts: %d", code)
	}
	if diff := cmp.Diff(fleetMACs(e.set, nil), macs(all)); diff != "" {
		t.Errorf("every host of the profiles, by MAC (-want +got):\n%s", diff)
	}
	states := map[string]registry.State{}
	for _, v := range all {
		states[v.MAC] = v.State
		if !v.InProfiles || v.Hostname == "" || v.Labels["rack"] == "" {
			t.Errorf("host %s: %+v, want its profile's name and labels", v.MAC, v)
		}
	}
	if states[macN01] != registry.StateInstalled || states[macS01] != registry.StatePending {
		t.Errorf("states = %v", states)
	}

	below := n01.Version.Number + 1
	tests := []struct {
		query string
		want  []string
	}{
		{"?state=installed", []string{macN01, macN02}},
		{"?state=pending", slices.DeleteFunc(fleetMACs(e.set, nil), func(m string) bool { return m == macN01 || m == macN02 })},
		{"?state=failed", []string{}},
		{"?version_below=" + strconv.Itoa(below), []string{macN01, macN02}},
		{"?version_below=" + strconv.Itoa(n01.Version.Number), []string{}},
		{"?label=rack=r2", fleetMACs(e.set, map[string]string{"rack": "r2"})},
		{"?label=rack=r1&label=role=storage", fleetMACs(e.set, map[string]string{"rack": "r1", "role": "storage"})},
		{"?label=rack=r1&state=installed&version_below=" + strconv.Itoa(below), []string{macN01, macN02}},
		{"?label=rack=nowhere", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var got []HostView
			if code := e.admin(http.MethodGet, "/api/hosts"+tt.query, nil, &got); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if diff := cmp.Diff(tt.want, macs(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, q := range []string{"?state=broken", "?version_below=x", "?label=novalue", "?colour=red"} {
		if code := e.admin(http.MethodGet, "/api/hosts"+q, nil, nil); code != http.StatusBadRequest {
			t.Errorf("GET /api/hosts%s: %d, want 400", q, code)
		}
	}
	for path, want := range map[string]int{
		"/api/hosts/" + macOut:              http.StatusNotFound,
		"/api/hosts/not-a-mac":              http.StatusBadRequest,
		"/api/hosts/" + macOut + "/history": http.StatusNotFound,
		"/api/hosts/5254.0077.0001":         http.StatusOK,
	} {
		if code := e.admin(http.MethodGet, path, nil, nil); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
}

func TestVersions(t *testing.T) {
	e := newEnv(t, nil)
	var hosts []HostView
	if code := e.admin(http.MethodGet, "/api/hosts", nil, &hosts); code != http.StatusOK {
		t.Fatalf("hosts: %d", code)
	}
	// none is the last line: the hosts but those given, in MAC order.
	none := func(installed ...string) VersionCount {
		var c VersionCount
		for _, h := range hosts {
			if !slices.Contains(installed, h.MAC) {
				c.Count++
				c.MACs = append(c.MACs, h.MAC)
			}
		}
		return c
	}
	var never []VersionCount
	if code := e.admin(http.MethodGet, "/api/versions", nil, &never); code != http.StatusOK {
		t.Fatalf("versions of a fleet never installed: %d", code)
	}
	if diff := cmp.Diff([]VersionCount{none()}, never); diff != "" {
		t.Errorf("versions of a fleet never installed (-want +got):\n%s", diff)
	}
	a := e.install(macN01)
	b := e.install(macR2)
	e.install(macN02)
	var got []VersionCount
	if code := e.admin(http.MethodGet, "/api/versions", nil, &got); code != http.StatusOK {
		t.Fatalf("versions: %d", code)
	}
	va := registry.Version{Name: a.Version.Name, Number: a.Version.Number}
	vb := registry.Version{Name: b.Version.Name, Number: b.Version.Number}
	var want []VersionCount
	if va == vb {
		want = []VersionCount{{Version: va, Count: 3, MACs: []string{macN01, macN02, macR2}}}
	} else {
		want = []VersionCount{{Version: va, Count: 2, MACs: []string{macN01, macN02}}, {Version: vb, Count: 1, MACs: []string{macR2}}}
		if a.Version.Number > b.Version.Number {
			want[0], want[1] = want[1], want[0]
		}
	}
	want = append(want, none(macN01, macN02, macR2))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
}

func TestReinstallSelection(t *testing.T) {
	e := newEnv(t, nil)
	n01 := e.install(macN01)
	e.install(macN02)
	below := strconv.Itoa(n01.Version.Number + 1)

	tests := []struct {
		name string
		req  ReinstallRequest
		want ReinstallResponse
		code int
	}{
		{"version below, dry run", ReinstallRequest{VersionBelow: ptr(n01.Version.Number + 1), DryRun: true},
			ReinstallResponse{Reinstalled: []string{macN01, macN02}}, http.StatusOK},
		{"selector", ReinstallRequest{Selector: map[string]string{"rack": "r2"}, DryRun: true},
			ReinstallResponse{Reinstalled: fleetMACs(e.set, map[string]string{"rack": "r2"})}, http.StatusOK},
		{"selector and version: both must match", ReinstallRequest{Selector: map[string]string{"rack": "r2"}, VersionBelow: ptr(n01.Version.Number + 1), DryRun: true},
			ReinstallResponse{Reinstalled: []string{}}, http.StatusOK},
		{"MACs in any spelling, plus a stranger", ReinstallRequest{MACs: []string{"525400770004", macOut, "52-54-00-77-00-04"}, DryRun: true},
			ReinstallResponse{Reinstalled: []string{macS01}, Skipped: []Skipped{{MAC: macOut, Reason: "not in the profiles: nothing to install"}}}, http.StatusOK},
		{"nothing named", ReinstallRequest{Reason: "why not"}, ReinstallResponse{}, http.StatusBadRequest},
		{"empty selector is not every host", ReinstallRequest{Selector: map[string]string{}}, ReinstallResponse{}, http.StatusBadRequest},
		{"bad MAC", ReinstallRequest{MACs: []string{"52:54"}}, ReinstallResponse{}, http.StatusBadRequest},
		{"unknown version", ReinstallRequest{MACs: []string{macN01}, Version: "demo-9"}, ReinstallResponse{}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got ReinstallResponse
			code := e.admin(http.MethodPost, "/api/reinstall", tt.req, &got)
			if code != tt.code {
				t.Fatalf("status %d, want %d", code, tt.code)
			}
			if diff := cmp.Diff(tt.want, got); code == http.StatusOK && diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Dry runs changed nothing; a real one does.
	var installed []HostView
	e.admin(http.MethodGet, "/api/hosts?state=installed", nil, &installed)
	if len(installed) != 2 {
		t.Fatalf("dry runs changed states: %d installed", len(installed))
	}
	var got ReinstallResponse
	e.admin(http.MethodPost, "/api/reinstall", ReinstallRequest{VersionBelow: ptr(n01.Version.Number + 1), Reason: "CVE-2026-0001"}, &got)
	var pending []HostView
	e.admin(http.MethodGet, "/api/hosts?state=pending&version_below="+below, nil, &pending)
	if diff := cmp.Diff([]string{macN01, macN02}, macs(pending)); diff != "" {
		t.Errorf("pending hosts below %s after reinstall (-want +got):\n%s", below, diff)
	}
	if code := e.admin(http.MethodPost, "/api/reinstall", `{"macs":[],"bogus":1}`, nil); code != http.StatusBadRequest {
		t.Errorf("unknown field: %d, want 400", code)
	}
}

func ptr[T any](v T) *T { return &v }
