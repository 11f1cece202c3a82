package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"
)

// TestMkdisk: the image has a GPT with its one root partition, and the
// same size gives the same bytes.
func TestMkdisk(t *testing.T) {
	dir := t.TempDir()
	var imgs [2][]byte
	for i := range imgs {
		p := filepath.Join(dir, "d.img")
		if err := run([]string{"mkdisk", "-size-mib", "8", p}); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := gpt.Read(f, 512, 512)
		f.Close()
		if err != nil {
			t.Fatalf("no GPT: %v", err)
		}
		if len(tbl.Partitions) != 1 || tbl.Partitions[0].Name != "root" || tbl.Partitions[0].Start != 2048 {
			t.Errorf("partitions %+v", tbl.Partitions)
		}
		if imgs[i], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	if len(imgs[0]) != 8*mib || string(imgs[0]) != string(imgs[1]) {
		t.Error("two images of one size differ")
	}
}

// TestSummarize: the latest attempt of each machine counts; the wall
// time ends at the last success; fields naming peers are summed.
func TestSummarize(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	hist := map[string][]map[string]any{
		"52:54:08:00:00:00": {{"result": "success", "finished": t0.Add(10 * time.Second), "duration_ms": 9000, "bytes_fetched": 100, "bytes_from_peers": 60}},
		"52:54:08:00:00:01": {{"result": "failed"}, {"result": "success", "finished": t0.Add(12 * time.Second), "duration_ms": 11000, "bytes_fetched": 50}},
		"52:54:08:00:00:02": {{"result": "failed", "error": "boom"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		mac := r.PathValue("mac")
		json.NewEncoder(w).Encode(hist[mac])
	}))
	mux := http.NewServeMux()
	mux.Handle("GET /api/hosts/{mac}/history", srv.Config.Handler)
	srv.Config.Handler = mux
	defer srv.Close()
	a := &admin{base: srv.URL, token: "tok", client: srv.Client()}
	s, err := summarize(context.Background(), a, []string{"52:54:08:00:00:00", "52:54:08:00:00:01", "52:54:08:00:00:02"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"agents": 3, "installed": 2, "failed": 1, "wall_s": 12, "fetched_bytes": 150, "peer_bytes": 60,
		"install_p50_s": 10, "install_max_s": 11, "install_min_s": 9}
	if d := cmp.Diff(want, s.metrics); d != "" {
		t.Errorf("metrics (-want +got):\n%s", d)
	}
	if len(s.errs) != 1 {
		t.Errorf("errors %q, want the failed machine's", s.errs)
	}
}

func TestHostEnded(t *testing.T) {
	for _, c := range []struct {
		h    host
		want bool
	}{
		{host{State: "installed"}, true},
		{host{State: "failed"}, true},
		{host{State: "pending", LastError: "x"}, true},
		{host{State: "installing", LastError: "x"}, false},
		{host{State: "pending"}, false},
	} {
		if got := c.h.ended(); got != c.want {
			t.Errorf("%+v: ended %v, want %v", c.h, got, c.want)
		}
	}
}
