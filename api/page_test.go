package api

import (
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"testing"

	"github.com/rackboot/rackboot/registry"
)

// TestHostsPagesAndForget: /api/hosts answers in pages linked by
// rel="next" that together list every host once, in order; DELETE
// /api/hosts?state=discovered forgets the discovered records and nothing
// else.
func TestHostsPagesAndForget(t *testing.T) {
	e := newEnv(t, nil)
	e.install(macN01)
	const unknown = 30
	for i := range unknown {
		hw := net.HardwareAddr{0x02, 0xee, 0, 0, 0, byte(i)}
		if _, err := e.reg.Boot(t.Context(), hw, "", false, true); err != nil {
			t.Fatal(err)
		}
	}
	var all []HostView
	if code := e.admin(http.MethodGet, "/api/hosts?limit=5000", nil, &all); code != http.StatusOK {
		t.Fatalf("hosts: %d", code)
	}
	if want := len(e.set.Hosts()) + unknown; len(all) != want {
		t.Fatalf("%d hosts in one page, want %d", len(all), want)
	}

	next := regexp.MustCompile(`^<(/api/hosts\?[^>]*)>; rel="next"$`)
	var paged []string
	path, pages := "/api/hosts?limit=7", 0
	for path != "" {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page []HostView
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(page) > 7 {
			t.Fatalf("GET %s: %d, %d hosts, %v", path, resp.StatusCode, len(page), err)
		}
		for _, v := range page {
			paged = append(paged, v.MAC)
		}
		pages++
		path = ""
		if m := next.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
			path = m[1]
		}
	}
	if len(paged) != len(all) || pages != (len(all)+6)/7 {
		t.Fatalf("%d hosts in %d pages, want %d in %d", len(paged), pages, len(all), (len(all)+6)/7)
	}
	for i := range all {
		if paged[i] != all[i].MAC {
			t.Fatalf("host %d: paged %s, want %s", i, paged[i], all[i].MAC)
		}
	}
	var disc []HostView
	e.admin(http.MethodGet, "/api/hosts?state=discovered&limit=10", nil, &disc)
	if len(disc) != 10 {
		t.Errorf("a filtered page has %d hosts, want 10", len(disc))
	}
	for _, q := range []string{"?limit=0", "?limit=5001", "?after=nope"} {
		if code := e.admin(http.MethodGet, "/api/hosts"+q, nil, nil); code != http.StatusBadRequest {
			t.Errorf("GET /api/hosts%s: %d, want 400", q, code)
		}
	}

	for _, q := range []string{"", "?state=installed", "?state=pending", "?state=discovered&label=rack=r1"} {
		if code := e.admin(http.MethodDelete, "/api/hosts"+q, nil, nil); code != http.StatusBadRequest {
			t.Errorf("DELETE /api/hosts%s: %d, want 400", q, code)
		}
	}
	var res ForgetResult
	if code := e.admin(http.MethodDelete, "/api/hosts?state=discovered", nil, &res); code != http.StatusOK || res.Forgotten != unknown {
		t.Fatalf("forget: %d, %+v; want %d forgotten", code, res, unknown)
	}
	var left []HostView
	e.admin(http.MethodGet, "/api/hosts?limit=5000", nil, &left)
	if len(left) != len(e.set.Hosts()) {
		t.Errorf("%d hosts after forgetting, want the profiles' %d", len(left), len(e.set.Hosts()))
	}
	if h := e.host(macN01); h.State != registry.StateInstalled {
		t.Errorf("installed host after forget: %s", h.State)
	}
}
