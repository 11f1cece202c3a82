package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/dhcp"
	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/rollout"
	"github.com/rackboot/rackboot/tftp"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// -h, describe mode and flag errors: the flags alone, before a
	// --config file is read.
	var file string
	flags := defaultServeConfig()
	if _, exit, ok := parseArgs(ctx, serveFlags(&flags, &file, stderr), args, stdout); !ok {
		return exit
	}
	cfg, err := parseServeConfig(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "rackboot serve: %v\n", err)
		return 2
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "rackboot serve: %v\n", err)
		return 2
	}
	tuneGC()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("rackboot serve stopped", "err", err)
		return 1
	}
	return 0
}

// gcPercent is the daemon's GOGC unless the environment sets one. A rack
// booting at once is tens of thousands of small requests a second, each
// leaving a few KiB of garbage, while the live heap is small (the profiles
// and decoded records): with Go's default of 100 the collector ran so
// often that it took a fifth of the CPU of a script request and set its
// tail latency (bench P3: GOGC=400 gave 1.3x the scripts per second at
// half the p99). 400 lets the heap grow to five times the live data
// between collections, tens of MB for a fleet of thousands.
const gcPercent = 400

// tuneGC sets gcPercent unless GOGC is set: an operator's setting wins.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// serve opens every socket first, so that a port already taken or a missing
// directory fails at start with a clear message, then runs the servers until
// ctx ends.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, d := range []struct{ flag, dir string }{{"ipxe-dir", cfg.IPXEDir}, {"artifacts", cfg.Artifacts}} {
		if fi, err := os.Stat(d.dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--%s %s: not a directory", d.flag, d.dir)
		}
	}
	ifaces, err := bootInterfaces(cfg.Interfaces, cfg.Advertise)
	if err != nil {
		return err
	}
	store, shared, err := openStore(ctx, cfg, ifaces, log)
	if err != nil {
		return err
	}
	defer store.Close()
	adminToken, err := api.AdminToken(cfg.Data)
	if err != nil {
		return err
	}
	events := &api.Events{}
	fl := fleet{&profiles.Watcher{Dir: cfg.Profiles, Log: log}}
	check := newCatalogCheck(cfg.Artifacts, log)
	hold := func(mac net.HardwareAddr, pendingVersion string) string {
		set := fl.Current()
		host, ok := set.Lookup(mac)
		if !ok {
			return ""
		}
		return check.Held(set, host, pendingVersion)
	}
	m := metrics.New(metrics.Options{Census: fleetCensus(store, fl, hold), Log: log, Build: buildInfo()})
	ready := &readiness{store: store, check: check, metrics: m}
	check.onChecked = func(st catalogStatus) {
		m.CatalogChecked(st.OK, st.Failed, st.Pending)
		ready.update()
		notifyStatus(log, st)
	}
	pl := planner(cfg.Artifacts, readIndex)
	pl.Peers = cfg.peerSettings()
	reloads := &reloadLog{log: log}
	var cl *cluster
	var bus *eventBus
	if shared != nil {
		cl = newCluster(shared, agentAPIs(cfg, ifaces), m, log)
		ready.cluster = cl
		bus = newEventBus(shared, m, log)
		events.Forward = bus.forward
	}
	fl.OnReload = func(set *profiles.Set) {
		if cl != nil {
			cl.setProfiles(set.Digest())
		}
		m.ProfilesLoaded()
		reloads.loaded(set)
		check.Changed()
		go measureImages(pl, set, log)
	}
	fl.OnError = func(error) {
		m.ProfilesFailed()
		reloads.failed()
	}
	reg := &registry.Registry{Store: store, MaxAttempts: cfg.MaxAttempts, Log: log, Notify: installMetrics(m, events.Changed),
		MaxDiscovered: cfg.MaxDiscovered, DiscoveredTTL: cfg.DiscoveredTTL, OnForget: m.DiscoveredForgotten, Hold: hold}
	if shared != nil {
		if err := shareSecrets(ctx, shared, cfg, reg, &adminToken, log); err != nil {
			return err
		}
	}

	nbp := filepath.Join(cfg.Data, "nbp")
	if err := stageBootFiles(cfg.IPXEDir, nbp, log); err != nil {
		return err
	}
	if err := fl.Reload(); err != nil {
		return fmt.Errorf("profiles %s:\n%w", cfg.Profiles, err)
	}
	trusted, err := cfg.trustedPrefixes()
	if err != nil {
		return err
	}
	links := &linkCheck{trusted: trusted}
	id, err := applianceTLS(cfg, ifaces, nbp, log)
	if err != nil {
		return err
	}

	// Every socket is opened before any server runs: a port already taken
	// fails the start cleanly, with nothing half running.
	var runs []func(context.Context) error
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()

	for _, bi := range ifaces {
		srv := &dhcp.Server{
			Config: dhcp.Config{
				ServerIP:  bi.Advertise,
				HTTPPort:  cfg.HTTPPort,
				EFIFile:   cfg.EFIFile,
				ARM64File: cfg.ARM64File,
				Discovery: cfg.Discovery,
			},
			Hosts:   fl,
			Log:     log, // Serve adds the interface to each packet's logger
			OnReply: m.DHCPReply,
		}
		for _, port := range []int{cfg.DHCPPort, cfg.PXEPort} {
			if port == 0 {
				continue
			}
			conn, err := dhcp.Listen(bi.Name, port)
			if err != nil {
				return fmt.Errorf("dhcp on %s port %d: %w", bi.Name, port, err)
			}
			closers = append(closers, conn)
			// The receive buffer is what absorbs a rack's burst while
			// the process waits for a core; say what the kernel granted.
			if rb, wb, err := dhcp.Buffers(conn); err == nil {
				log.Info("dhcp socket", "interface", bi.Name, "port", port, "receive_buffer", rb, "send_buffer", wb)
			}
			runs = append(runs, func(ctx context.Context) error { return srv.Serve(ctx, conn) })
		}
		if cfg.IPv6RA {
			ra := &dhcp.RAResponder{Interface: bi.Name, Log: log.With("interface", bi.Name)}
			runs = append(runs, ra.Serve)
		}
		log.Info("serving interface", "interface", bi.Name, "ip", bi.Advertise.String())
	}

	tconn, err := net.ListenPacket("udp4", ":"+strconv.Itoa(cfg.TFTPPort))
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	closers = append(closers, tconn)
	// Static: nbp is the copy staged above, written before serving starts.
	ts := &tftp.Server{Root: nbp, Static: true, Log: log, Identify: links.macOf, MaxPerClient: tftpMaxPerClient(cfg.TFTPMaxPerClient),
		OnTransfer: func(t tftp.Transfer) { m.TFTPTransfer(t.Outcome.String(), t.Bytes) }}
	runs = append(runs, func(ctx context.Context) error { return ts.Serve(ctx, tconn) })

	hln, err := net.Listen("tcp4", ":"+strconv.Itoa(cfg.HTTPPort))
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	maxConns := cfg.HTTPMaxConns
	if maxConns == 0 {
		maxConns = defaultHTTPMaxConns()
	}
	sln, err := net.Listen("tcp4", ":"+strconv.Itoa(cfg.HTTPSPort))
	if err != nil {
		return fmt.Errorf("https: %w", err)
	}
	rt := httpRoutes(cfg, nbp, fl, reg, events, adminToken, pl, id.CA, links, m, ready, cl, log)
	if cl == nil {
		rt.api.Appliances = soleAppliance(cfg, ifaces, fl)
	}
	hs, hl := newHTTPServer(hln, rt.plain, maxConns, cfg.HTTPMaxPerClient, log)
	m.HTTPConnections(hl.Open, hl.Shed, hl.Refused)
	// The API's connections are few (an agent's requests, an admin's
	// CLI): the same caps, on a listener of its own, so a flood of one
	// port cannot take the other's slots. The connection metrics are the
	// plain port's, where firmware floods land.
	ss, sl := newHTTPServer(sln, rt.secure, maxConns, cfg.HTTPMaxPerClient, log)
	ss.TLSConfig = tlsConfig(id)
	// Server-sent event streams would otherwise hold Shutdown until its
	// timeout.
	ss.RegisterOnShutdown(events.Close)

	g, ctx := errgroup.WithContext(ctx)
	for _, run := range runs {
		g.Go(func() error { return run(ctx) })
	}
	g.Go(func() error {
		if err := hs.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		// The certificate is in TLSConfig.
		if err := ss.ServeTLS(sl, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		// A fresh context: ctx is already done, and shutting down with it
		// would drain nothing.
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(hs.Shutdown(sctx), ss.Shutdown(sctx))
	})

	g.Go(func() error { return fl.Run(ctx) })
	// The staged rollouts and the sweep of discovered records run on one
	// appliance of a shared store at a time: the leader.
	leading := func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Go(func() {
			// A rollout record the store cannot read must not stop the
			// appliance serving PXE: rollouts stop, and say why.
			if err := rt.rollouts.Run(ctx); err != nil {
				log.Error("staged rollouts are not driven: their records cannot be read", "err", err)
			}
		})
		wg.Go(func() { sweepDiscovered(ctx, reg, registry.SweepInterval, log) })
		wg.Wait()
	}
	if cl != nil {
		g.Go(func() error { cl.run(ctx); return nil })
		g.Go(func() error { cl.lead(ctx, leading); return nil })
		g.Go(func() error { bus.run(ctx); return nil })
		g.Go(func() error { bus.receive(ctx, rt.api); return nil })
	} else {
		g.Go(func() error { leading(ctx); return nil })
	}
	g.Go(func() error { return reloadOnHangup(ctx, fl.Watcher) })
	g.Go(func() error { check.Run(ctx, fl.Current, recheckInterval); return nil })

	// Every socket is bound and the profiles are loaded: systemd may
	// start what depends on rackboot (Type=notify). /readyz waits for
	// the artifact check too.
	ready.bound.Store(true)
	ready.update()
	notifyReady(log)

	log.Info("rackboot serving", "profiles", cfg.Profiles, "http_port", cfg.HTTPPort, "https_port", cfg.HTTPSPort,
		"tftp_port", cfg.TFTPPort, "dhcp_port", cfg.DHCPPort, "pxe_port", cfg.PXEPort,
		"ipxe_dir", cfg.IPXEDir, "artifacts", cfg.Artifacts, "discovery", cfg.Discovery,
		"http_max_conns", maxConns, "http_max_per_client", cfg.HTTPMaxPerClient, "tftp_max_per_client", cfg.TFTPMaxPerClient,
		"max_discovered", cfg.MaxDiscovered, "trust_routed", cfg.TrustRouted, "discovered_ttl", cfg.DiscoveredTTL.String())
	err = g.Wait()
	log.Info("rackboot stopped")
	return err
}

// reloadLog says when a broken profiles edit is fixed: the watcher logs
// each failed load with every file:line, and an operator watching the log
// wants the line that says it is over. The watcher's loop and SIGHUP both
// reload, so it is safe for concurrent use.
type reloadLog struct {
	log *slog.Logger
	// brokenSince is when the profiles directory first failed to load
	// (Unix nanoseconds), 0 while it loads.
	brokenSince atomic.Int64
}

func (r *reloadLog) failed() { r.brokenSince.CompareAndSwap(0, time.Now().UnixNano()) }

func (r *reloadLog) loaded(set *profiles.Set) {
	if t := r.brokenSince.Swap(0); t != 0 {
		r.log.Info("profiles fixed: the edit that failed now loads, and the new profiles serve",
			"broken_for", time.Since(time.Unix(0, t)).Round(time.Second).String(), "files", len(set.Files()), "hosts", set.Len())
	}
}

// sweepDiscovered runs the registry's Sweep at once and then every
// interval until ctx ends: discovered records not seen for their TTL are
// forgotten (docs/DESIGN.md, "Discovered records"). A failed sweep is
// logged and tried again at the next tick.
func sweepDiscovered(ctx context.Context, reg *registry.Registry, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := reg.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Error("discovered records: sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tftpMaxPerClient maps the tftp-max-per-client setting, where 0 means no
// cap, to tftp.Server.MaxPerClient, where 0 means the default.
func tftpMaxPerClient(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// measureImages measures the catalog's images in the artifacts directory
// and reads the indexes of the chunked ones ahead of the first plan that
// needs them (the planner remembers). An image that is missing or wrong
// is the catalog check's to report (catalogCheck: its hosts are held), so
// a failure here is only a debug line.
func measureImages(pl profiles.Planner, set *profiles.Set, log *slog.Logger) {
	for _, v := range set.Versions() {
		img := v.Image
		if strings.Contains(img.URL, "://") {
			continue
		}
		start := time.Now()
		var stored, raw int64
		var err error
		switch {
		case img.Format != agentapi.FormatChunked:
			stored, raw, err = pl.ImageSizes(img.URL, img.Format)
		case pl.ChunkIndex == nil:
			continue
		default:
			stored, raw, _, err = pl.ChunkIndex(img.URL)
		}
		if err != nil {
			log.Debug("catalog image not measured", "version", v.Name, "path", img.URL, "err", err)
			continue
		}
		log.Debug("catalog image measured", "version", v.Name, "path", img.URL, "bytes", stored, "raw_bytes", raw, "took", time.Since(start).Round(time.Millisecond))
	}
}

// reloadOnHangup re-reads the profiles on SIGHUP. A broken edit is logged
// with every file:line by the watcher and the old snapshot keeps serving;
// the reload ends with ctx, so a SIGTERM during it is not held up.
func reloadOnHangup(ctx context.Context, w *profiles.Watcher) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			w.ReloadContext(ctx) // the watcher logs the outcome
		}
	}
}

// routes are the daemon's two HTTP handlers (docs/DESIGN.md, section 7,
// "TLS"): plain carries what firmware and iPXE fetch, which Debian's iPXE
// can only fetch over plain HTTP, and refuses the API; secure, on the
// HTTPS port, carries the admin and agent APIs.
type routes struct {
	plain, secure http.Handler
	// rollouts is the staged-rollout engine behind the API; serve runs it.
	rollouts *rollout.Engine
	// api is the admin and agent API.
	api *api.Server
}

// httpRoutes builds the HTTP handlers; cl is nil unless the store is
// shared with other appliances.
func httpRoutes(cfg serveConfig, nbp string, fl fleet, reg *registry.Registry, events *api.Events, adminToken string, pl api.Planner, ca []byte, links *linkCheck, m *metrics.Metrics, ready *readiness, cl *cluster, log *slog.Logger) routes {
	mux := http.NewServeMux()
	ih := &ipxe.Handler{Advertise: cfg.Advertise, Port: cfg.HTTPPort, APIPort: cfg.HTTPSPort, CA: caArchivePath,
		Hosts: fl, Discovery: cfg.Discovery, Log: log, Lifecycle: lifecycle{Registry: reg, Discovery: cfg.Discovery}, Verify: links.verifyRequest, OnScript: m.IPXEScript}
	if cl != nil {
		// The installer fails over to the other appliances' APIs.
		ih.PeerAPIs = cl.peerAPIs
	}
	scripts := m.Instrument("ipxe", ih)
	// Artifacts stay on plain HTTP: the plan, fetched over HTTPS, carries
	// each image's SHA-256, which the agent verifies.
	var base string
	if cfg.Advertise != "" {
		base = "http://" + net.JoinHostPort(cfg.Advertise, strconv.Itoa(cfg.HTTPPort))
	}
	mux.Handle("/api/", apiOverHTTPS(cfg.Advertise, cfg.HTTPSPort))
	mux.Handle("/boot.ipxe", scripts)
	mux.Handle("/ipxe", scripts)
	// An install of a chunked image fetches its chunks by the ten
	// thousand: one debug line each, and their own handler class in the
	// metrics, so the artifacts' counts stay readable.
	art := &artifacts.Handler{Dir: cfg.Artifacts, Prefix: "/artifacts/", Log: log, Identify: links.macOf,
		QuietDir: profiles.ChunkDir, ChunkStore: profiles.ChunkDir, OnServe: func(s artifacts.Served) {
			class := "artifacts"
			if s.Path == profiles.ChunkDir || strings.HasPrefix(s.Path, profiles.ChunkDir+"/") { // a batch, a chunk
				class = "chunks" // a redirect to a peer is a chunk's 307
			}
			m.HTTPRequest(class, s.Status, s.Bytes)
		}}
	// Peer distribution: chunk requests of agents that take redirects
	// may be sent to peers, and agents ask where a batch's chunks are.
	var pr *peerRoutes
	if cfg.peerSettings() != nil {
		pr = newPeerRoutes(cfg.Artifacts, func() []*profiles.Version { return fl.Current().Versions() })
		pr.coord.SubnetOnly = cfg.Peers == peersSubnet
		pr.linger = cfg.PeerLinger
		pr.where = func(status int) { m.HTTPRequest("chunks-where", status, 0) }
		art.Redirect = pr.Redirect
		mux.Handle("/artifacts/", pr.Where("/artifacts/", art))
	} else {
		mux.Handle("/artifacts/", art)
	}
	// UEFI HTTP boot clients are given an http:// URL of the iPXE binary;
	// the agent's CA archive is staged here too.
	mux.Handle("/nbp/", &artifacts.Handler{Dir: nbp, Prefix: "/nbp/", Log: log, Identify: links.macOf,
		OnServe: func(s artifacts.Served) { m.HTTPRequest("nbp", s.Status, s.Bytes) }})
	// Unauthenticated, as Prometheus scrapes: counts, no secrets.
	mux.Handle("GET /metrics", m.Handler())
	healthz := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }
	mux.HandleFunc("/healthz", healthz)
	mux.Handle("/readyz", ready)
	mux.Handle("GET "+caURLPath, caHandler(ca))

	secure := http.NewServeMux()
	pc := &powerControl{credentials: cfg.bmcCredentials(os.Getenv), stagger: cfg.PowerStagger, concurrency: cfg.PowerConcurrency,
		timeout: cfg.PowerTimeout, reg: reg, metrics: m, log: log}
	ro := &rollout.Engine{Env: &rolloutEnv{reg: reg, fleet: fl, power: pc}, Log: log, Notify: rolloutNotify(m, events)}
	apiServer := &api.Server{Registry: reg, Fleet: fl, Planner: pl, AdminToken: adminToken, Events: events,
		BaseURL: base, ArtifactsPort: cfg.HTTPPort, VerifyAgent: links.verifyRequest, Log: log, Profiles: fl.Watcher, ProfilesDir: cfg.Profiles,
		Held: reg.Hold, Power: pc, Rollouts: ro}
	if pr != nil {
		apiServer.Peers = pr // not a nil *peerRoutes in the interface: nil turns the holdings path off
	}
	if cl != nil {
		apiServer.RolloutsElsewhere = cl.rolloutsElsewhere
		apiServer.Appliances = cl.views
	}
	secure.Handle("/api/", m.Instrument("api", apiServer))
	secure.HandleFunc("/healthz", healthz)
	secure.Handle("/readyz", ready)
	secure.Handle("GET "+caURLPath, caHandler(ca))
	return routes{plain: mux, secure: secure, rollouts: ro, api: apiServer}
}
