package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/profiles"
)

func TestProfilesStatusShowsRefusedEdit(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) {
		if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hosts:\n  - mac: 52:54:00:00:00:01\n    hostname: good\n")
	w := &profiles.Watcher{Dir: dir}
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Fleet: w.Current(), AdminToken: adminTok, Profiles: w, ProfilesDir: dir}
	get := func() (int, ProfilesStatus) {
		r := httptest.NewRequest("GET", "/api/profiles", nil)
		r.Header.Set("Authorization", "Bearer "+adminTok)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		var st ProfilesStatus
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Code, st
	}
	if code, st := get(); code != 200 || !st.Healthy || st.Hosts != 1 || len(st.Errors) != 0 {
		t.Fatalf("valid profiles: %d %+v", code, st)
	}
	write("hosts:\n  - mac: 52:54:00:00:00:01\n    hostnmae: typo\n")
	if err := w.Reload(); err == nil {
		t.Fatal("invalid edit loaded")
	}
	code, st := get()
	if code != 200 || st.Healthy || st.Hosts != 1 || len(st.Errors) != 1 ||
		!strings.HasPrefix(st.Errors[0], filepath.Join(dir, "fleet.yaml")+":3") {
		t.Errorf("after a refused edit: %d %+v", code, st)
	}

	r := httptest.NewRequest("GET", "/api/profiles", nil)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, r)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("without token: %d, want 401", rec.Code)
	}
}
