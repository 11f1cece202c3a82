package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// fuzzServer is the admin API over the example fleet and a registry in
// memory, served without sockets.
func fuzzServer(f *testing.F) (*Server, *profiles.Set) {
	set, err := profiles.Load("../examples")
	if err != nil {
		f.Fatalf("example fleet: %v", err)
	}
	events := &Events{}
	f.Cleanup(events.Close)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	reg := &registry.Registry{Store: registry.NewMemory(), MaxAttempts: 3, Now: func() time.Time { return now }, Notify: events.Changed}
	return &Server{Registry: reg, Fleet: set, Planner: profiles.Planner{}, AdminToken: adminTok, Events: events}, set
}

// FuzzAdmin sends the admin API a host filter (the query of GET
// /api/hosts) and a reinstall body, as an admin. Neither may panic or
// answer 5xx (the registry is in memory and cannot fail); a list answered
// 200 is JSON; an accepted reinstall names each host once, sorted, in
// canonical form, and only hosts of the profiles.
func FuzzAdmin(f *testing.F) {
	for _, s := range []struct{ query, body string }{
		{"state=installed", `{"macs":["52:54:00:77:00:01"],"dry_run":true}`},
		{"version_below=11&label=rack=r1", `{"selector":{"rack":"r2"},"dry_run":true}`},
		{"label=rack", `{"version_below":2,"reason":"CVE\u0000\u001b","by":"root"}`},
		{"state=bogus&x=1", `{"macs":["525400770004","52-54-00-77-00-04","52:54:00:99:00:01"]}`},
		{"version_below=-9223372036854775808", `{"selector":{},"macs":[]}`},
		{"label==&label=a=b=c", `{"macs":["52:54"],"version":"demo-9"}`},
		{"%zz", `{"macs":null} {}`},
		{"limit=3&after=52:54:00:77:00:02&state=pending", `{}`},
		{"limit=0&after=5254", `{}`},
		{"state=installed", `{"macs":["52:54:00:77:00:01"],"wipe_data":true,"reason":" \u0000"}`},
		{"state=pending", `{"selector":{"rack":"r1"},"wipe_data":true,"reason":"new layout","dry_run":true}`},
	} {
		f.Add(s.query, []byte(s.body))
	}
	srv, set := fuzzServer(f)
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		if len(query)+len(body) > 4096 {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "/api/hosts", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", "Bearer "+adminTok)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("hosts?%s: 200 with invalid JSON %.200q", query, w.Body.String())
			}
			if l := w.Header().Get("Link"); l != "" && !strings.HasPrefix(l, "</api/hosts?") {
				t.Fatalf("hosts?%s: next page %q is not a page of /api/hosts", query, l)
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("hosts?%s: status %d %.200s", query, w.Code, w.Body.String())
		}

		r = httptest.NewRequest(http.MethodPost, "/api/reinstall", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+adminTok)
		w = httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return
		default:
			t.Fatalf("reinstall %q: status %d %.200s", body, w.Code, w.Body.String())
		}
		var resp ReinstallResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("reinstall %q: 200 with %v", body, err)
		}
		if !slices.IsSorted(resp.Reinstalled) || len(slices.Compact(slices.Clone(resp.Reinstalled))) != len(resp.Reinstalled) {
			t.Fatalf("reinstall %q: hosts not sorted and unique: %q", body, resp.Reinstalled)
		}
		for _, m := range resp.Reinstalled {
			hw, err := profiles.ParseMAC(m)
			if err != nil || hw.String() != m {
				t.Fatalf("reinstall %q: %q is not a canonical MAC", body, m)
			}
			if _, ok := set.Lookup(hw); !ok {
				t.Fatalf("reinstall %q: %s is not in the profiles", body, m)
			}
		}
	})
}
