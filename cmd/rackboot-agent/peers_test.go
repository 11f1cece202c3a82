package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/imaging"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/peers"
)

// TestPeerWave puts the pieces of peer distribution together in one
// process (docs/DESIGN.md, "Peer distribution"): a slow appliance (the
// real artifacts handler, each chunk delayed) whose chunk requests a
// peers.Coordinator redirects, and a wave of agents on their own
// loopback addresses, each assembling the image onto a file in Spread
// order through PeerChunks, serving what it wrote with a ChunkServer
// and reporting its holdings every 20 ms. Every install must end with
// the image, and the appliance must send far less than one image per
// agent. It stands in for bench P8 until that exists; the numbers are
// logged. With batches the appliance answers ?ids= and ?where= as
// cmd/rackboot's peerRoutes.Where does. In image order (Spread off) the
// same wave is logged too, not checked: it shows why Spread exists.
func TestPeerWave(t *testing.T) {
	for _, tc := range []struct {
		name            string
		spread, batches bool
	}{{"spread", true, false}, {"spread-batches", true, true}, {"in-order", false, false}} {
		t.Run(tc.name, func(t *testing.T) { peerWave(t, tc.spread, tc.batches) })
	}
}

func peerWave(t *testing.T, spread, batches bool) {
	const agents = 6
	dir := t.TempDir()
	img := make([]byte, 8<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range img {
		img[i] = byte(r.Uint32() >> 27)
	}
	res, err := chunkstore.Import(context.Background(), bytes.NewReader(img), filepath.Join(dir, "chunks"), chunkstore.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ix, sha := res.Index, res.Index.Digest()

	coord := &peers.Coordinator{Index: func(s string) (*chunkstore.Index, error) {
		if s != sha {
			return nil, peers.ErrUnknownImage
		}
		return ix, nil
	}}
	var fromAppliance atomic.Int64
	art := &artifacts.Handler{Dir: dir, Prefix: "/artifacts/",
		// Asked before every GET: a chunk it does not redirect costs
		// the appliance 5 ms of its link, a redirect nothing.
		Redirect: func(r *http.Request, name string, mac net.HardwareAddr) (string, bool) {
			s := strings.TrimSuffix(name[strings.LastIndexByte(name, '/')+1:], ".zst")
			id, err := chunkstore.ParseChunkID(s)
			if err == nil && r.URL.Query().Get(agentapi.ParamPeers) == sha {
				ap := netip.MustParseAddrPort(r.RemoteAddr)
				if u, ok := coord.Pick(sha, id, peers.Requester{MAC: mac.String(), Addr: ap.Addr()}); ok {
					return u, true
				}
			}
			time.Sleep(5 * time.Millisecond)
			return "", false
		},
		OnServe: func(s artifacts.Served) {
			if s.Status == http.StatusOK {
				fromAppliance.Add(s.Bytes)
			}
		}}
	var app *httptest.Server
	if batches {
		art.ChunkStore = "chunks"
		app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			switch {
			case r.URL.Path == "/artifacts/chunks" && q.Has(agentapi.ParamWhere):
				var ids []chunkstore.ChunkID
				for _, s := range strings.Split(q.Get(agentapi.ParamWhere), ",") {
					id, _ := chunkstore.ParseChunkID(s)
					ids = append(ids, id)
				}
				hw, _ := net.ParseMAC(q.Get("mac"))
				ap := netip.MustParseAddrPort(r.RemoteAddr)
				json.NewEncoder(w).Encode(agentapi.ChunkPlaces{Peers: coord.Places(sha, ids, peers.Requester{MAC: hw.String(), Addr: ap.Addr()})})
				return
			case q.Has("ids"):
				// A batch costs the link 5 ms a chunk as well.
				time.Sleep(time.Duration(len(strings.Split(q.Get("ids"), ","))) * 5 * time.Millisecond)
			}
			art.ServeHTTP(w, r)
		}))
	} else {
		app = httptest.NewServer(art)
	}
	defer app.Close()
	// The agents serve until the whole wave is done.
	wave, end := context.WithCancel(context.Background())
	defer end()

	var wg sync.WaitGroup
	var fromPeers atomic.Int64
	errs := make(chan error, agents)
	start := time.Now()
	for n := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- runWaveAgent(t, wave, n, app.URL, ix, coord, spread, &fromPeers)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	end()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	stored := ix.StoredSize()
	t.Logf("batches %v: %d agents, image %d bytes (%d stored) in %v: the appliance sent %d bytes (%.2f images), peers %d",
		batches, agents, ix.Size, stored, took.Round(time.Millisecond), fromAppliance.Load(),
		float64(fromAppliance.Load())/float64(stored), fromPeers.Load())
	if spread && (fromAppliance.Load() > agents*stored/2 || fromPeers.Load() == 0) {
		t.Errorf("the appliance sent %d bytes for %d agents of a %d-byte image, peers %d: peer distribution did not spread the load",
			fromAppliance.Load(), agents, stored, fromPeers.Load())
	}
}

// runWaveAgent is one agent of TestPeerWave, on 127.0.0.(n+2): it
// returns when its image is assembled and serves until wave ends.
func runWaveAgent(t *testing.T, wave context.Context, n int, appURL string, ix *chunkstore.Index, coord *peers.Coordinator, spread bool, fromPeers *atomic.Int64) error {
	addr := netip.AddrFrom4([4]byte{127, 0, 0, byte(n + 2)})
	mac := fmt.Sprintf("52:54:00:00:01:%02x", n)
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return err
	}
	disk, err := os.OpenFile(filepath.Join(t.TempDir(), "disk"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		ln.Close()
		return err
	}
	held := imaging.NewHeldChunks(len(ix.Chunks))
	srv := &imaging.ChunkServer{Index: ix, Held: held, Disk: disk, Uploads: 16}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(wave, ln)
	}()
	go func() {
		<-served
		disk.Close()
	}()
	var mu sync.Mutex
	var failed []agentapi.PeerFailure
	port := ln.Addr().(*net.TCPAddr).Port
	report := func() {
		mu.Lock()
		f := failed
		failed = nil
		mu.Unlock()
		if err := coord.Hold(mac, addr, agentapi.Holdings{Image: ix.Digest(), Port: port, Have: held.Bitmap(), Failed: f}); err != nil {
			t.Errorf("agent %d: holdings: %v", n, err)
		}
	}
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wave.Done():
				return
			case <-tick.C:
				report()
			}
		}
	}()
	src := &imaging.PeerChunks{Base: appURL + "/artifacts/chunks?mac=" + strings.ReplaceAll(mac, ":", "-"), Image: ix.Digest(),
		OnPeerFailure: func(f agentapi.PeerFailure) { mu.Lock(); failed = append(failed, f); mu.Unlock() }}
	res, err := imaging.Assemble(context.Background(), disk, imaging.AssembleOptions{Index: ix, Source: src, Spread: spread, Workers: 4, OnDisk: held.Add})
	if err != nil {
		return fmt.Errorf("agent %d: %w", n, err)
	}
	if res.SHA256 != ix.Digest() {
		return fmt.Errorf("agent %d: digest %s", n, res.SHA256)
	}
	_, p := src.Received()
	fromPeers.Add(p)
	return nil
}
