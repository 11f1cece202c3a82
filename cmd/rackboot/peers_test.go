package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/peers"
	"github.com/rackboot/rackboot/profiles"
)

// TestPeerRoutes: a holdings report makes the artifacts handler send
// another agent's chunk request to the holder; a request that does not
// ask for redirects, the holder's own, one for another image and one
// for a file that is no chunk are served.
func TestPeerRoutes(t *testing.T) {
	dir := t.TempDir()
	img := make([]byte, 2<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(r.Uint32() >> 28) // compressible, and chunked
	}
	res, err := chunkstore.Import(context.Background(), bytes.NewReader(img), filepath.Join(dir, profiles.ChunkDir), chunkstore.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ix := res.Index
	if err := os.MkdirAll(filepath.Join(dir, profiles.IndexDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := chunkstore.WriteIndexFile(filepath.Join(dir, profiles.IndexDir, "v1.rbidx"), ix); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, profiles.IndexDir, "broken.rbidx"), []byte("RBIDX"), 0o644)
	broken := strings.Repeat("0", 64)
	catalog := []*profiles.Version{
		{Name: "v1", Image: profiles.Image{URL: profiles.IndexDir + "/v1.rbidx", SHA256: ix.Digest(), Format: agentapi.FormatChunked}},
		{Name: "broken", Image: profiles.Image{URL: profiles.IndexDir + "/broken.rbidx", SHA256: broken, Format: agentapi.FormatChunked}},
	}
	routes := newPeerRoutes(dir, func() []*profiles.Version { return catalog })
	const holder, requester = "52:54:00:00:00:01", "52:54:00:00:00:02"
	have := agentapi.NewBitmap(len(ix.Chunks))
	for i := range ix.Chunks {
		have.Set(i)
	}
	reply, err := routes.Hold(holder, netip.MustParseAddr("10.0.0.1"), agentapi.Holdings{Image: ix.Digest(), Port: 8090, Have: have})
	if err != nil || reply != (agentapi.HoldingsReply{Serve: true, IntervalMS: 500}) {
		t.Fatalf("Hold = %+v, %v", reply, err)
	}

	h := &artifacts.Handler{Dir: dir, Prefix: "/artifacts/", Redirect: routes.Redirect}
	c := ix.Chunks[0]
	chunk := "chunks/" + c.ID.String()[:4] + "/" + c.ID.String() + ".zst"
	for _, tc := range []struct {
		name, path, mac, from string
		redirect              bool
	}{
		{"redirected", chunk, requester, "10.0.0.2", true},
		{"no-peers-parameter", chunk, requester, "10.0.0.2", false},
		{"the-holder-itself", chunk, holder, "10.0.0.1", false},
		{"another-image", chunk, requester, "10.0.0.2", false},
		{"not-a-chunk", profiles.IndexDir + "/v1.rbidx", requester, "10.0.0.2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := "?mac=" + strings.ReplaceAll(tc.mac, ":", "-")
			switch tc.name {
			case "no-peers-parameter":
			case "another-image":
				q += "&" + agentapi.ParamPeers + "=" + broken
			default:
				q += "&" + agentapi.ParamPeers + "=" + ix.Digest()
			}
			req := httptest.NewRequest(http.MethodGet, "/artifacts/"+tc.path+q, nil)
			req.RemoteAddr = tc.from + ":40000"
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			want := "http://10.0.0.1:8090" + agentapi.ChunkURL(agentapi.PeerChunks, c.ID.String())
			switch {
			case tc.redirect && (w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != want):
				t.Errorf("%d, Location %q; want 307 to %s", w.Code, w.Header().Get("Location"), want)
			case !tc.redirect && w.Code != http.StatusOK:
				t.Errorf("%d, Location %q; want the file", w.Code, w.Header().Get("Location"))
			}
		})
	}

	// A finished install's holdings outlive its reports; a forgotten
	// agent's do not.
	routes.Finished(holder)
	if u, ok := routes.coord.Pick(ix.Digest(), c.ID, peers.Requester{MAC: requester}); !ok {
		t.Errorf("Pick after Finished = %q, %v", u, ok)
	}
	routes.Forget(holder)
	if u, ok := routes.coord.Pick(ix.Digest(), c.ID, peers.Requester{MAC: requester}); ok {
		t.Errorf("Pick after Forget = %q", u)
	}

	// Refusals are the agent's (400); an unreadable index is ours.
	if _, err := routes.Hold(holder, netip.MustParseAddr("10.0.0.1"), agentapi.Holdings{Image: strings.Repeat("1", 64), Port: 8090}); !errors.Is(err, api.ErrBadHoldings) {
		t.Errorf("an image not in the catalog: %v, want api.ErrBadHoldings", err)
	}
	if _, err := routes.Hold(holder, netip.MustParseAddr("10.0.0.1"), agentapi.Holdings{Image: ix.Digest(), Port: 8090, Have: agentapi.Bitmap{1}}); !errors.Is(err, api.ErrBadHoldings) {
		t.Errorf("a bitmap of the wrong size: %v, want api.ErrBadHoldings", err)
	}
	if _, err := routes.Hold(holder, netip.MustParseAddr("10.0.0.1"), agentapi.Holdings{Image: broken, Port: 8090}); err == nil || errors.Is(err, api.ErrBadHoldings) {
		t.Errorf("an unreadable index: %v, want the appliance's error", err)
	}
}

func TestChunkName(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for name, ok := range map[string]bool{
		"chunks/abab/" + id + ".zst":                      true,
		"chunks/abac/" + id + ".zst":                      false,
		"chunks/abab/" + id:                               false,
		"images/abab/" + id + ".zst":                      false,
		"chunks/abab/" + id[:62] + "zz.zst":               false,
		"chunks/0000/" + strings.Repeat("0", 64) + ".zst": false,
		"chunks/abab/" + id + ".zst/x":                    false,
	} {
		if _, got := chunkName(name); got != ok {
			t.Errorf("chunkName(%q) = %v", name, got)
		}
	}
}

// TestPeerWhere: where a batch of chunks is: the holder for those it
// holds, the appliance ("") for the others and for the holder itself;
// other requests reach the artifacts handler.
func TestPeerWhere(t *testing.T) {
	dir := t.TempDir()
	img := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range img {
		img[i] = byte(r.Uint32() >> 28)
	}
	res, err := chunkstore.Import(context.Background(), bytes.NewReader(img), filepath.Join(dir, profiles.ChunkDir), chunkstore.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ix := res.Index
	os.MkdirAll(filepath.Join(dir, profiles.IndexDir), 0o755)
	if err := chunkstore.WriteIndexFile(filepath.Join(dir, profiles.IndexDir, "v1.rbidx"), ix); err != nil {
		t.Fatal(err)
	}
	catalog := []*profiles.Version{{Name: "v1", Image: profiles.Image{URL: profiles.IndexDir + "/v1.rbidx", SHA256: ix.Digest(), Format: agentapi.FormatChunked}}}
	routes := newPeerRoutes(dir, func() []*profiles.Version { return catalog })
	const holder, requester = "52:54:00:00:00:01", "52:54:00:00:00:02"
	have := agentapi.NewBitmap(len(ix.Chunks))
	have.Set(0)
	if _, err := routes.Hold(holder, netip.MustParseAddr("10.0.0.1"), agentapi.Holdings{Image: ix.Digest(), Port: 8090, Have: have}); err != nil {
		t.Fatal(err)
	}
	h := routes.Where("/artifacts/", &artifacts.Handler{Dir: dir, Prefix: "/artifacts/", ChunkStore: profiles.ChunkDir})
	ids := []string{ix.Chunks[0].ID.String(), ix.Chunks[1].ID.String()}
	get := func(u, from string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, u, nil)
		req.RemoteAddr = from + ":40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for _, tc := range []struct {
		name, mac, from string
		want            []string
	}{
		{"requester", requester, "10.0.0.2", []string{"http://10.0.0.1:8090", ""}},
		{"the-holder-itself", holder, "10.0.0.1", []string{"", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := get(agentapi.WhereURL("/artifacts/chunks?mac="+strings.ReplaceAll(tc.mac, ":", "-"), ids, ix.Digest()), tc.from)
			var got agentapi.ChunkPlaces
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
				t.Fatalf("%d %s: %v", w.Code, w.Body, err)
			}
			if !slices.Equal(got.Peers, tc.want) || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("places %q, want %q", got.Peers, tc.want)
			}
		})
	}
	// Malformed: 400. Other requests: the artifacts handler's.
	if w := get("/artifacts/chunks?where=zz&peers="+ix.Digest(), "10.0.0.2"); w.Code != http.StatusBadRequest {
		t.Errorf("bad id: %d", w.Code)
	}
	if w := get("/artifacts/chunks?where="+ids[0], "10.0.0.2"); w.Code != http.StatusBadRequest {
		t.Errorf("no image: %d", w.Code)
	}
	if w := get(agentapi.ChunksURL("/artifacts/chunks?mac=52-54-00-00-00-02", ids), "10.0.0.2"); w.Code != http.StatusOK || w.Body.Len() == 0 {
		t.Errorf("a batch through the wrapper: %d, %d bytes", w.Code, w.Body.Len())
	}
}
