package artifacts

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRedirect: Redirect sees the file's name and the machine, and its
// URL is answered with an uncacheable 307; declined, or for HEAD, the
// file is served.
func TestRedirect(t *testing.T) {
	dir := t.TempDir()
	id := strings.Repeat("cd", 32)
	name := "chunks/cdcd/" + id + ".zst"
	os.MkdirAll(filepath.Join(dir, "chunks", "cdcd"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, name), []byte("chunk"), 0o644); err != nil {
		t.Fatal(err)
	}
	type ask struct {
		name string
		mac  string
	}
	var asked []ask
	var statuses []int
	h := &Handler{Dir: dir, Prefix: "/artifacts/",
		Redirect: func(r *http.Request, name string, mac net.HardwareAddr) (string, bool) {
			asked = append(asked, ask{name, mac.String()})
			if r.URL.Query().Get("peers") == "" {
				return "", false
			}
			return "http://10.0.0.7:8090/chunks/cdcd/" + id + ".zst", true
		},
		OnServe: func(s Served) { statuses = append(statuses, s.Status) }}
	do := func(method, query string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, "/artifacts/"+name+"?mac=52-54-00-00-00-01"+query, nil))
		return w
	}
	w := do(http.MethodGet, "&peers=abc")
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "http://10.0.0.7:8090/chunks/cdcd/"+id+".zst" ||
		w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("redirect: %d, Location %q, Cache-Control %q", w.Code, w.Header().Get("Location"), w.Header().Get("Cache-Control"))
	}
	if w := do(http.MethodGet, ""); w.Code != http.StatusOK || w.Body.String() != "chunk" {
		t.Errorf("declined: %d %q", w.Code, w.Body.String())
	}
	if w := do(http.MethodHead, "&peers=abc"); w.Code != http.StatusOK {
		t.Errorf("HEAD: %d", w.Code)
	}
	if len(asked) != 2 || asked[0] != (ask{name, "52:54:00:00:00:01"}) {
		t.Errorf("Redirect asked %v; want twice, for GET only, with the name and MAC", asked)
	}
	if len(statuses) != 3 || statuses[0] != http.StatusTemporaryRedirect {
		t.Errorf("OnServe saw %v", statuses)
	}
}
