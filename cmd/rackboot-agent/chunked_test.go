package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// chunkRequests counts the requests for chunks the appliance of
// newChunkAppliance answered.
var chunkRequests atomic.Int64

// newChunkAppliance is the real appliance serving two chunked versions
// of the test image, os-1 and os-2 (a few blocks rewritten), imported
// into its chunk store as `rackboot image add` does. With opts, the
// planner's and the API server's settings can be changed before it
// serves.
func newChunkAppliance(t *testing.T, v1, v2 []byte, opts ...func(*api.Server)) (*appliance, map[string]*chunkstore.Index) {
	t.Helper()
	aps, ixs := newChunkAppliances(t, v1, v2, 1, nil, opts...)
	return aps[0], ixs
}

// newChunkAppliances is newChunkAppliance as n appliances of one fleet
// (one registry store and token key, the same artifacts); wrap, if set,
// wraps the handler of appliance i.
func newChunkAppliances(t *testing.T, v1, v2 []byte, n int, wrap func(i int, h http.Handler) http.Handler, opts ...func(*api.Server)) ([]*appliance, map[string]*chunkstore.Index) {
	t.Helper()
	profDir, artDir := t.TempDir(), t.TempDir()
	store := filepath.Join(artDir, profiles.ChunkDir)
	ixs := map[string]*chunkstore.Index{}
	for name, raw := range map[string][]byte{"os-1": v1, "os-2": v2} {
		res, err := chunkstore.Import(context.Background(), bytes.NewReader(raw), store, chunkstore.ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(artDir, "images"), 0o755)
		if err := chunkstore.WriteIndexFile(filepath.Join(artDir, "images", name+".rbidx"), res.Index); err != nil {
			t.Fatal(err)
		}
		ixs[name] = res.Index
	}
	version := func(name string, n string) string {
		return `  - name: ` + name + `
    number: ` + n + `
    image: { url: images/` + name + `.rbidx, sha256: ` + ixs[name].Digest() + `, format: chunked, kind: whole-disk }
    installer: { kernel: vmlinuz, initrd: agent.cpio.gz }
`
	}
	fleet := "versions:\n" + version("os-1", "1") + version("os-2", "2") + `layouts:
  - name: small
    disk: { select: smallest, min_size: 32MiB }
    partitions:
      - { name: cidata, size: 16MiB, type: linux, content: config }
defaults: { version: os-1, layout: small }
hosts:
  - { mac: "52:54:00:00:01:01", hostname: n01 }
  - { mac: "52:54:00:00:01:02", hostname: n02, version: os-2 }
`
	if err := os.WriteFile(filepath.Join(profDir, "fleet.yaml"), []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := profiles.Load(profDir)
	if err != nil {
		t.Fatal(err)
	}
	parse := func(r io.Reader) (artifacts.Index, error) {
		ix, err := chunkstore.ReadIndex(r)
		if err != nil {
			return artifacts.Index{}, err
		}
		return artifacts.Index{Size: ix.Size, Stored: ix.StoredSize(), SHA256: ix.Digest(), Source: ix.SourceDigest()}, nil
	}
	records, key := registry.NewMemory(), []byte("the fleet's token key")
	var aps []*appliance
	for i := range n {
		reg := &registry.Registry{Store: records, Key: key}
		mux := http.NewServeMux()
		srv := &api.Server{Registry: reg, Fleet: set, AdminToken: adminToken,
			Planner: profiles.Planner{ImageSizes: (&artifacts.Sizes{Dir: artDir}).Image, ChunkIndex: (&artifacts.Indexes{Dir: artDir, Parse: parse}).Image}}
		for _, o := range opts {
			o(srv)
		}
		mux.Handle("/api/", srv)
		mux.Handle("/artifacts/", &artifacts.Handler{Dir: artDir, Prefix: "/artifacts/", QuietDir: profiles.ChunkDir, ChunkStore: profiles.ChunkDir,
			OnServe: func(s artifacts.Served) {
				if strings.HasPrefix(s.Path, profiles.ChunkDir) {
					chunkRequests.Add(1)
				}
			}})
		var h http.Handler = mux
		if wrap != nil {
			h = wrap(i, mux)
		}
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		aps = append(aps, &appliance{t: t, url: ts.URL, ts: ts, reg: reg, art: artDir})
	}
	return aps, ixs
}

// TestChunkedAgainstAppliance: the agent installs os-1 from chunks, then,
// reinstalled with os-2, fetches only what changed (os-1 the seed) and
// the appliance records it; a chunk damaged in the store fails another
// machine's install, naming the chunk, and nothing is marked installed.
func TestChunkedAgainstAppliance(t *testing.T) {
	img := newTestImage(t)
	// Contents that cut into distinct chunks, as a file system's do.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 2 * mib; i < imageSize-2*mib; i++ {
		img.raw[i] = "rackboot \x00\x01usr/lib"[r.IntN(18)]
	}
	v2 := bytes.Clone(img.raw)
	for _, at := range []int{2 * mib, 5 * mib} {
		copy(v2[at:], bytes.Repeat([]byte("os-2 "), 2000))
	}
	ap, ixs := newChunkAppliance(t, img.raw, v2)
	const n01, n02 = "52:54:00:00:01:01", "52:54:00:00:01:02"
	disk, disks := newTarget(t, targetSize)
	install := func(mac string) (outcome, error, string) {
		a, screen := testAgent(t, ap.url, mac, ap.boot(mac, "n01"), disks)
		out, err := a.attempt(context.Background())
		return out, err, screen.String()
	}
	chunkRequests.Store(0)
	out, err, screen := install(n01)
	if err != nil || !out.Done {
		t.Fatalf("os-1: %+v, %v\nconsole:\n%s", out, err, screen)
	}
	// The chunks came in batches.
	if n := len(ixs["os-1"].Chunks); chunkRequests.Load() == 0 || chunkRequests.Load()*2 > int64(n) {
		t.Errorf("%d requests for the chunks of a %d-chunk image, want batches", chunkRequests.Load(), n)
	}
	checkInstalled(t, disk, img)
	hw, _ := net.ParseMAC(n01)
	if _, err := ap.reg.Reinstall(context.Background(), hw, registry.ReinstallRequest{Reason: "upgrade", Version: "os-2"}); err != nil {
		t.Fatal(err)
	}
	out, err, screen = install(n01)
	if err != nil || !out.Done {
		t.Fatalf("os-2: %+v, %v\nconsole:\n%s", out, err, screen)
	}
	checkInstalled(t, disk, testImage{raw: v2})
	h := ap.history(n01)
	if len(h) != 2 || h[1].Result != registry.ResultSuccess || h[1].Version.Name != "os-2" {
		t.Fatalf("history %+v", h)
	}
	first, up := h[0], h[1]
	if first.BytesFetched < ixs["os-1"].StoredSize()/2 || up.BytesFetched <= 0 || up.BytesFetched*4 > ixs["os-2"].StoredSize() ||
		up.BytesReused*10 < ixs["os-2"].Size*9 || up.BytesWritten >= ixs["os-2"].Size/4 {
		t.Errorf("os-1 fetched %d; os-2 fetched %d of %d stored, reused %d and wrote %d of %d",
			first.BytesFetched, up.BytesFetched, ixs["os-2"].StoredSize(), up.BytesReused, up.BytesWritten, ixs["os-2"].Size)
	}
	if log := strings.Join(up.Log, "\n"); !strings.Contains(log, "seed=os-1") {
		t.Errorf("the reinstall did not use os-1 as its seed:\n%s", log)
	}

	// n02 installs os-2 on an empty disk; one of its chunks is damaged
	// in the store.
	var victim chunkstore.IndexChunk
	for _, c := range ixs["os-2"].Chunks[1:] {
		if !c.ID.IsZero() {
			victim = c
			break
		}
	}
	p := chunkstore.ChunkPath(filepath.Join(ap.art, profiles.ChunkDir), victim.ID)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	os.WriteFile(p, b, 0o644)
	_, disks = newTarget(t, targetSize)
	out, err, screen = install(n02)
	if out.Done || err == nil || !strings.Contains(err.Error(), victim.ID.String()) {
		t.Fatalf("install with a damaged chunk: %+v, %v; want a failure naming %s\nconsole:\n%s", out, err, victim.ID, screen)
	}
	h = ap.history(n02)
	if len(h) != 1 || h[0].Result == registry.ResultSuccess || !strings.Contains(h[0].Error, victim.ID.String()) {
		t.Errorf("history of n02: %+v", h)
	}
	var host api.HostView
	ap.admin("/api/hosts/"+n02, &host)
	if host.State == registry.StateInstalled || !host.Version.IsZero() {
		t.Errorf("n02 is %s with version %+v after a damaged chunk", host.State, host.Version)
	}
}

// holdings records the holdings reports the appliance receives
// (api.Peers), and answers that installing other agents install the
// image.
type holdings struct {
	installing int
	mu         sync.Mutex
	reports    []agentapi.Holdings
	finished   []string
}

func (h *holdings) Hold(mac string, _ netip.Addr, r agentapi.Holdings) (agentapi.HoldingsReply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, r)
	return agentapi.HoldingsReply{Serve: true, IntervalMS: 20, Installing: h.installing}, nil
}

func (h *holdings) Finished(mac string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.finished = append(h.finished, mac)
}

func (h *holdings) Forget(string) {}

// TestAgentServesPeers: with a plan that turns peer distribution on, the
// agent reports what it holds while it installs, serves its chunks on
// the plan's port, verified, after its done was accepted while another
// machine installs the image, and stops once no peer has asked for the
// idle time; when no other machine installs it, it does not linger.
func TestAgentServesPeers(t *testing.T) {
	t.Run("wave", func(t *testing.T) { agentServesPeers(t, 1) })
	t.Run("alone", func(t *testing.T) { agentServesPeers(t, 0) })
}

func agentServesPeers(t *testing.T, others int) {
	img := newTestImage(t)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 2 * mib; i < imageSize-2*mib; i++ {
		img.raw[i] = "rackboot \x00\x01usr/lib"[r.IntN(18)]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // the agent listens on every address of it
	rec := &holdings{installing: others}
	ap, ixs := newChunkAppliance(t, img.raw, img.raw, func(s *api.Server) {
		pl := s.Planner.(profiles.Planner)
		pl.Peers = &agentapi.PeerSettings{Port: port, LingerMS: 60_000}
		s.Planner, s.Peers = pl, rec
	})
	ix := ixs["os-1"]
	const n01 = "52:54:00:00:01:01"
	disk, disks := newTarget(t, targetSize)
	a, screen := testAgent(t, ap.url, n01, ap.boot(n01, "n01"), disks)
	a.peerIdle = 2 * time.Second

	// A peer asks for a chunk while the agent lingers: one in the middle
	// of the image (the first ones hold the partition table, which the
	// install rewrites, so they are no longer the image's and not served).
	var chunk chunkstore.IndexChunk
	for _, c := range ix.Chunks[len(ix.Chunks)/2:] {
		if !c.ID.IsZero() {
			chunk = c
			break
		}
	}
	got := make(chan error, 1)
	if others == 0 {
		got <- nil
	}
	go func() {
		if others == 0 {
			return
		}
		u := agentapi.ChunkURL(fmt.Sprintf("http://127.0.0.1:%d%s", port, agentapi.PeerChunks), chunk.ID.String())
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			rec.mu.Lock()
			done := len(rec.finished) > 0
			rec.mu.Unlock()
			if !done {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			got <- fetchPeerChunk(u, chunk.ID)
			return
		}
		got <- errors.New("the install did not finish in 30 s")
	}()
	start := time.Now()
	out, err := a.attempt(context.Background())
	if err != nil || !out.Done {
		t.Fatalf("attempt: %+v, %v\nconsole:\n%s", out, err, screen)
	}
	if err := <-got; err != nil {
		t.Errorf("a peer's request after done: %v\nconsole:\n%s", err, screen)
	}
	checkInstalled(t, disk, img)
	rec.mu.Lock()
	reports := slices.Clone(rec.reports)
	rec.mu.Unlock()
	if len(reports) == 0 {
		t.Fatal("no holdings report")
	}
	last := reports[len(reports)-1]
	if last.Image != ix.Digest() || last.Port != port || last.Have.Check(len(ix.Chunks)) != nil || last.Have.Count() == 0 {
		t.Errorf("last holdings report: image %s port %d, %d of %d chunks", last.Image, last.Port, last.Have.Count(), len(ix.Chunks))
	}
	if others == 0 {
		if !strings.Contains(screen.String(), "no other machine installs this image") || strings.Contains(screen.String(), "serving chunks to peers for") {
			t.Errorf("alone, the agent lingered:\n%s", screen)
		}
	} else if !strings.Contains(screen.String(), "stopped serving chunks") {
		t.Errorf("the agent did not stop serving:\n%s", screen)
	}
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("the attempt took %v: the linger did not end at the idle time", took)
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("the chunk server still listens after the attempt")
	}
}

// fetchPeerChunk gets chunk id from a peer's chunk server at u and
// verifies it.
func fetchPeerChunk(u string, id chunkstore.ChunkID) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	z, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return err
	}
	defer dec.Close()
	b, err := dec.DecodeAll(z, nil)
	if err != nil {
		return err
	}
	if chunkstore.ChunkID(sha256.Sum256(b)) != id {
		return errors.New("the chunk served does not verify")
	}
	return nil
}
