package artifacts

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/agentapi"
)

// TestChunks: a chunk of the store is served as the bytes of its file
// (application/zstd or octet-stream, never a Content-Encoding that a
// client would undo), Range works on it, and a served chunk is logged at
// Debug while a missing one is a warning like any file; OnServe counts
// them all.
func TestChunks(t *testing.T) {
	dir := t.TempDir()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	chunk := enc.EncodeAll(testRaw(64<<10), nil)
	enc.Close()
	id := strings.Repeat("ab", 32)
	if err := os.MkdirAll(filepath.Join(dir, "chunks", "abab"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chunks", "abab", id+".zst"), chunk, 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "v.rbidx"), []byte("index"), 0o644)
	var logs syncBuffer
	served := 0
	h := &Handler{Dir: dir, Prefix: "/artifacts/", QuietDir: "chunks",
		Log:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnServe: func(Served) { served++ }}
	get := func(path, rg string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Accept-Encoding", "gzip, zstd")
		if rg != "" {
			r.Header.Set("Range", rg)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	url := "/artifacts/chunks/abab/" + id + ".zst?mac=52-54-00-00-00-01"
	w := get(url, "")
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), chunk) || w.Header().Get("Content-Encoding") != "" {
		t.Errorf("chunk: %d, %d bytes, Content-Encoding %q", w.Code, w.Body.Len(), w.Header().Get("Content-Encoding"))
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/zstd" && ct != "application/octet-stream" {
		t.Errorf("chunk Content-Type %q", ct)
	}
	w = get(url, "bytes=10-19")
	if w.Code != http.StatusPartialContent || !bytes.Equal(w.Body.Bytes(), chunk[10:20]) {
		t.Errorf("chunk range: %d, %q", w.Code, w.Body.Bytes())
	}
	get("/artifacts/chunks/abab/"+strings.Repeat("cd", 32)+".zst", "")
	get("/artifacts/v.rbidx", "")
	got := logs.String()
	for _, want := range []string{
		`level=DEBUG msg="artifact request" path=chunks/abab/` + id + `.zst status=200`,
		`level=DEBUG msg="artifact request" path=chunks/abab/` + id + `.zst status=206`,
		`level=WARN msg="artifact request" path=chunks/abab/cdcd`,
		`level=INFO msg="artifact request" path=v.rbidx status=200`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if served != 4 {
		t.Errorf("OnServe called %d times, want 4", served)
	}
}

// TestChunkBatch: ?ids= on the store's directory answers the chunks'
// files in the order asked, or 404 when one is missing, 400 for a bad id
// or too many; the directory itself stays unservable without ids, and a
// handler without ChunkStore serves no batches.
func TestChunkBatch(t *testing.T) {
	dir := t.TempDir()
	var ids []string
	var files [][]byte
	for i := range 3 {
		id := strings.Repeat(string("abc"[i])+"1", 32)
		body := bytes.Repeat([]byte{byte('x' + i)}, 100+i)
		os.MkdirAll(filepath.Join(dir, "chunks", id[:4]), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "chunks", id[:4], id+".zst"), body, 0o644); err != nil {
			t.Fatal(err)
		}
		ids, files = append(ids, id), append(files, body)
	}
	h := &Handler{Dir: dir, Prefix: "/artifacts/", QuietDir: "chunks", ChunkStore: "chunks"}
	get := func(h *Handler, target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec
	}
	rec := get(h, "/artifacts/chunks?ids="+ids[2]+","+ids[0]+","+ids[2]+"&mac=52-54-00-00-00-01")
	want := bytes.Join([][]byte{files[2], files[0], files[2]}, nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) || rec.Header().Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Errorf("batch: %d, %d bytes (Content-Length %s), want %d", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"), len(want))
	}
	missing := strings.Repeat("d1", 32)
	many := strings.TrimSuffix(strings.Repeat(ids[0]+",", agentapi.MaxChunkBatch+1), ",")
	for _, tt := range []struct {
		target string
		code   int
	}{
		{"/artifacts/chunks?ids=" + ids[0] + "," + missing, http.StatusNotFound},
		{"/artifacts/chunks?ids=" + ids[0] + ",../../etc", http.StatusBadRequest},
		{"/artifacts/chunks?ids=", http.StatusBadRequest},
		{"/artifacts/chunks?ids=" + many, http.StatusBadRequest},
		{"/artifacts/chunks", http.StatusNotFound},
	} {
		if rec := get(h, tt.target); rec.Code != tt.code || (tt.code != http.StatusOK && bytes.Contains(rec.Body.Bytes(), files[0])) {
			t.Errorf("%.90s: %d, want %d", tt.target, rec.Code, tt.code)
		}
	}
	if rec := get(&Handler{Dir: dir, Prefix: "/artifacts/"}, "/artifacts/chunks?ids="+ids[0]); rec.Code != http.StatusNotFound {
		t.Errorf("a handler without ChunkStore answered a batch: %d", rec.Code)
	}
}
