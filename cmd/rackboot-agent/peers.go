package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// peerIdle is how long an agent whose install is done goes on serving
// its peers when none asks: the wave it belongs to has ended.
const peerIdle = 30 * time.Second

// peerSession is the agent's part in peer distribution for one install
// of a chunked image whose plan turns it on (docs/DESIGN.md, "Peer
// distribution"): it fetches chunks where the appliance redirects it
// (imaging.PeerChunks), serves its peers the chunks Assemble has put on
// the disk, verified (imaging.ChunkServer on the plan's port), and
// tells the appliance what it holds (holdingsReporter). After the
// install is done it serves on until nobody has asked for peerIdle, or
// the plan's linger has passed.
type peerSession struct {
	log      *slog.Logger
	settings agentapi.PeerSettings
	src      *failoverChunks // of imaging.PeerChunks, one per appliance
	rep      *holdingsReporter

	// ln is the chunk server's listener, disk the target opened for
	// reading (the installer's own descriptor closes when it returns);
	// both nil when the port could not be opened: the agent then
	// fetches from peers but serves nothing.
	ln   net.Listener
	disk *os.File

	ctx       context.Context // ends the server and the reports
	cancel    context.CancelFunc
	repCancel context.CancelFunc // ends the reports only
	wg        sync.WaitGroup

	mu  sync.Mutex
	srv *imaging.ChunkServer // set when the assembly starts
	// waveOver is set when the appliance answered the final report
	// that no other machine installs the image: nobody needs the
	// linger.
	waveOver bool
	// fetchers are src's chunk stores, one per appliance it went to.
	fetchers []*imaging.PeerChunks
}

// startPeers opens the chunk server's port and the target for reading,
// and returns the session of img's install onto target; ctx bounds it.
func (a *agent) startPeers(ctx context.Context, img agentapi.Image, target string) *peerSession {
	s := &peerSession{log: a.log, settings: *img.Peers}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.repCancel = func() {}
	s.rep = &holdingsReporter{post: a.api.holdings, image: img.SHA256}
	// A PeerChunks per appliance, as the failover goes: each asks its
	// appliance where chunks are.
	s.src = a.api.chunksAt(func(server *url.URL) chunkSource {
		p := &imaging.PeerChunks{Base: a.api.at(img.Chunks, server), Image: img.SHA256, Header: a.api.chunkHeader(img, server),
			Logger: a.log, OnPeerFailure: s.rep.failure}
		s.mu.Lock()
		s.fetchers = append(s.fetchers, p)
		s.mu.Unlock()
		return p
	})
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(img.Peers.Port)))
	if err != nil {
		a.log.Warn("cannot serve chunks to peers: fetching from them only", "port", img.Peers.Port, "err", err)
		return s
	}
	disk, err := os.Open(target)
	if err != nil {
		ln.Close()
		a.log.Warn("cannot serve chunks to peers: fetching from them only", "disk", target, "err", err)
		return s
	}
	s.ln, s.disk = ln, disk
	s.rep.port = img.Peers.Port
	a.log.Info("peer distribution on", "port", img.Peers.Port, "linger", time.Duration(img.Peers.LingerMS)*time.Millisecond)
	return s
}

// share is imaging.Installer.Share: the assembly of ix starts at off on
// the target. From now on the agent serves what Assemble names as on
// the disk and reports it.
func (s *peerSession) share(ix *chunkstore.Index, off int64) (func(int), bool) {
	held := imaging.NewHeldChunks(len(ix.Chunks))
	s.rep.held = held
	if s.ln != nil {
		srv := &imaging.ChunkServer{Index: ix, Held: held, Disk: s.disk, Offset: off, Logger: s.log}
		s.mu.Lock()
		s.srv = srv
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(s.ctx, s.ln); err != nil {
				s.log.Warn("chunk server", "err", err)
			}
		}()
	}
	var repCtx context.Context
	repCtx, s.repCancel = context.WithCancel(s.ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.rep.run(repCtx); err != nil && !errors.Is(err, errStopServing) {
			s.log.Warn("holdings reports", "err", err)
		}
	}()
	// Spread fetches in an order of its own so that peers hold
	// different chunks early; it costs a read-back of the image, worth
	// it only when the agent serves.
	return held.Add, s.ln != nil
}

// final ends the periodic reports and sends the holdings as they are at
// the end of the assembly, before done spends the token: the appliance
// keeps the last report of a finished install for its linger, and the
// periodic ones may be up to an interval old. Best effort: the install
// does not depend on it.
func (s *peerSession) final(ctx context.Context) {
	if s.rep.held == nil {
		return
	}
	s.repCancel()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := s.rep.once(ctx)
	if err != nil {
		s.log.Warn("final holdings report", "err", err)
		return
	}
	s.mu.Lock()
	s.waveOver = reply.Installing == 0
	s.mu.Unlock()
}

// received is the compressed chunk bytes fetched from peers so far.
func (s *peerSession) received() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, p := range s.fetchers {
		_, peers := p.Received()
		n += peers
	}
	return n
}

// served is the bytes the chunk server has sent its peers.
func (s *peerSession) served() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return 0
	}
	return s.srv.Served()
}

// linger serves the peers after the install was accepted as done, until
// nobody asked for idle, max has passed, or ctx ends; then it stops the
// session.
func (s *peerSession) linger(ctx context.Context, con *console, idle, max time.Duration) {
	s.mu.Lock()
	srv, over := s.srv, s.waveOver
	s.mu.Unlock()
	if srv == nil || max <= 0 || over {
		if over {
			con.Printf("rackboot-agent: no other machine installs this image: not serving chunks after done")
		}
		s.stop()
		return
	}
	con.Printf("rackboot-agent: serving chunks to peers for up to %v, until none has asked for %v", max, idle)
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		last := srv.LastRequest()
		if last.Before(start) {
			last = start
		}
		now := time.Now()
		if now.Sub(last) >= idle || now.Sub(start) >= max {
			break
		}
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	s.stop()
	con.Printf("rackboot-agent: stopped serving chunks after %v (%s sent to peers)", time.Since(start).Round(time.Second), mibString(s.served()))
}

// stop ends the chunk server and the reports, and closes the target.
func (s *peerSession) stop() {
	s.cancel()
	s.mu.Lock()
	started := s.srv != nil
	s.mu.Unlock()
	if s.ln != nil && !started {
		s.ln.Close() // Serve never took it
	}
	s.wg.Wait()
	if s.disk != nil {
		s.disk.Close()
	}
}
