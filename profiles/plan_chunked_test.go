package profiles

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rackboot/rackboot/agentapi"
)

const (
	chunkedSHA3 = "3333333333333333333333333333333333333333333333333333333333333333"
	chunkedSHA4 = "4444444444444444444444444444444444444444444444444444444444444444"
)

// chunkedFleet is a host on a chunked version, with an older chunked
// version, a compressed one and a chunked one of the other kind.
var chunkedFleet = map[string]string{"catalog.yaml": testCatalog, "a.yaml": `versions:
  - name: base-3
    number: 3
    image: {url: images/base-3.rbidx, sha256: "` + chunkedSHA3 + `"}
  - name: base-4
    number: 4
    image: {url: images/base-4.rbidx, sha256: "` + strings.ToUpper(chunkedSHA4) + `"}
  - name: root-1
    number: 1
    channel: parts
    image: {url: images/root-1.rbidx, sha256: "` + chunkedSHA3 + `", kind: partitions}
hosts:
  - mac: 52:54:00:00:00:01
    hostname: n1
    version: base-4
    layout: l1
    installer: {kernel: vmlinuz}
`}

// fakeIndexes answers ChunkIndex from a map of index paths.
func fakeIndexes(m map[string]string) func(string) (int64, int64, string, error) {
	return func(path string) (int64, int64, string, error) {
		sum, ok := m[path]
		if !ok {
			return 0, 0, "", &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
		}
		return 300 << 20, 2 << 30, sum, nil
	}
}

func TestPlanChunked(t *testing.T) {
	set := mustLoad(t, chunkedFleet)
	h, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	version := func(name string) *Version {
		v, ok := set.Version(name)
		if !ok {
			t.Fatalf("no version %s", name)
		}
		return v
	}
	indexes := map[string]string{"images/base-3.rbidx": chunkedSHA3, "images/base-4.rbidx": chunkedSHA4, "images/root-1.rbidx": chunkedSHA3}
	pl := Planner{ChunkIndex: fakeIndexes(indexes)}
	const base = "http://192.0.2.1:8080"
	img := func(seed *agentapi.Seed) *agentapi.Image {
		return &agentapi.Image{URL: base + "/artifacts/images/base-4.rbidx?mac=52-54-00-00-00-01", SHA256: chunkedSHA4,
			Format: agentapi.FormatChunked, Kind: KindWholeDisk, Size: 300 << 20, RawSize: 2 << 30,
			Chunks: base + "/artifacts/chunks?mac=52-54-00-00-00-01", Seed: seed}
	}
	seed3 := &agentapi.Seed{Version: "base-3", URL: base + "/artifacts/images/base-3.rbidx?mac=52-54-00-00-00-01"}
	for _, tt := range []struct {
		name      string
		pl        Planner
		installed *Version
		want      *agentapi.Image
	}{
		{"first install", pl, nil, img(nil)},
		{"from a chunked version", pl, version("base-3"), img(seed3)},
		{"same version again", pl, version("base-4"), img(&agentapi.Seed{Version: "base-4", URL: base + "/artifacts/images/base-4.rbidx?mac=52-54-00-00-00-01"})},
		{"from a compressed version", pl, version("v1"), img(nil)},
		{"from a compressed version imported too", Planner{ChunkIndex: fakeIndexes(indexes), Twin: func(source string) (string, bool) {
			return "images/v1-twin.rbidx", source == testSHA
		}}, version("v1"), img(&agentapi.Seed{Version: "v1", URL: base + "/artifacts/images/v1-twin.rbidx?mac=52-54-00-00-00-01"})},
		{"from a compressed version not imported", Planner{ChunkIndex: fakeIndexes(indexes), Twin: func(string) (string, bool) { return "", false }},
			version("v1"), img(nil)},
		{"from another kind", pl, version("root-1"), img(nil)},
		{"old index gone", Planner{ChunkIndex: fakeIndexes(map[string]string{"images/base-4.rbidx": chunkedSHA4})}, version("base-3"), img(nil)},
		{"no index reader", Planner{}, version("base-3"), func() *agentapi.Image {
			i := img(seed3)
			i.Size, i.RawSize = 0, 0
			return i
		}()},
		{"peer distribution on", Planner{ChunkIndex: fakeIndexes(indexes), Peers: &agentapi.PeerSettings{Port: 8090, LingerMS: 300_000}}, nil, func() *agentapi.Image {
			i := img(nil)
			i.Peers = &agentapi.PeerSettings{Port: 8090, LingerMS: 300_000}
			return i
		}()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.pl.Plan(h, nil, tt.installed, base)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, p.Image); diff != "" {
				t.Errorf("image (-want +got):\n%s", diff)
			}
			if u := agentapi.ChunkURL(p.Image.Chunks, chunkedSHA3); u != base+"/artifacts/chunks/3333/"+chunkedSHA3+".zst?mac=52-54-00-00-00-01" {
				t.Errorf("ChunkURL = %s", u)
			}
		})
	}
}

// TestPlanPeersChunkedOnly: the daemon's peer settings reach the plans of
// chunked images only; a streamed image has no chunks to share.
func TestPlanPeersChunkedOnly(t *testing.T) {
	set := mustLoad(t, chunkedFleet)
	h, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	v, ok := set.Version("v1")
	if !ok {
		t.Fatal("no version v1")
	}
	pl := Planner{Peers: &agentapi.PeerSettings{Port: 8090}}
	p, err := pl.Plan(h, v, nil, "http://192.0.2.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if p.Image.Peers != nil {
		t.Errorf("a %s image got peer settings %+v", p.Image.Format, p.Image.Peers)
	}
}

// TestPlanChunkedErrors: an index of another image, or none, fails the
// plan with what to look at.
func TestPlanChunkedErrors(t *testing.T) {
	set := mustLoad(t, chunkedFleet)
	h, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	other := Planner{ChunkIndex: fakeIndexes(map[string]string{"images/base-4.rbidx": chunkedSHA3})}
	_, err := other.Plan(h, nil, nil, "http://x")
	for _, want := range []string{"version base-4", "images/base-4.rbidx", chunkedSHA3, chunkedSHA4} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("digest mismatch: error %v, want it to name %s", err, want)
		}
	}
	none := Planner{ChunkIndex: fakeIndexes(nil)}
	if _, err := none.Plan(h, nil, nil, "http://x"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "version base-4") {
		t.Errorf("missing index: error %v", err)
	}
	// A Version built by hand, past the loader's check.
	v := *h.Version
	v.Image.URL = "https://elsewhere/base-4.rbidx"
	if _, err := (Planner{}).Plan(h, &v, nil, "http://x"); err == nil || !strings.Contains(err.Error(), "artifacts directory") {
		t.Errorf("remote index: error %v", err)
	}
}

// TestChunkedFormat: .rbidx means chunked; the schema's example loads.
func TestChunkedFormat(t *testing.T) {
	set, err := Load("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"base-3", "base-4"} {
		if v, ok := set.Version(name); !ok || v.Image.Format != agentapi.FormatChunked {
			t.Errorf("version %s: %+v", name, v)
		}
	}
}
