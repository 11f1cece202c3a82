package metrics

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every rackboot metric.
const namespace = "rackboot"

// Options configures New. The zero value works: no fleet gauges, scrape
// errors discarded.
type Options struct {
	// Census, if set, counts the fleet at each scrape, for the
	// rackboot_hosts and rackboot_hosts_by_version gauges.
	Census CensusFunc
	// Log receives scrape errors (a failing Census). Nil discards.
	Log *slog.Logger
	// Build labels rackboot_build_info.
	Build BuildInfo
}

// BuildInfo is what rackboot_build_info says of the running binary.
type BuildInfo struct {
	Version, Revision, GoVersion string
}

// Metrics holds rackboot's metrics and the registry that serves them.
// Create it with New.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	dhcpReplies   *prometheus.CounterVec
	tftpTransfers *prometheus.CounterVec
	tftpBytes     prometheus.Counter
	httpRequests  *prometheus.CounterVec
	httpBytes     *prometheus.CounterVec
	scripts       *prometheus.CounterVec

	installsStarted  prometheus.Counter
	installsFinished *prometheus.CounterVec
	installDuration  *prometheus.HistogramVec
	installBytes     prometheus.Counter
	installFetched   *prometheus.CounterVec

	profilesInvalid      prometheus.Gauge
	profilesReloadErrors prometheus.Counter
	profilesReloads      *prometheus.CounterVec
	catalogVersions      *prometheus.GaugeVec
	ready                prometheus.Gauge

	discoveredForgotten *prometheus.CounterVec

	powerActions  *prometheus.CounterVec
	bmcReachable  *prometheus.GaugeVec
	powerState    *prometheus.GaugeVec
	rolloutHosts  *prometheus.GaugeVec
	rolloutStatus *prometheus.GaugeVec

	appliances     prometheus.Gauge
	profilesDiffer prometheus.Gauge
	sharedEvents   *prometheus.CounterVec
}

// Install results, as the registry records them: the label values of
// rackboot_installs_finished_total, present from the start so that a rate
// over them never starts from a missing series.
var results = []string{"success", "failed", "superseded"}

// New returns the metrics, registered with a registry of their own along
// with the Go runtime and process collectors.
func New(o Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: o.Log,
		dhcpReplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dhcp_replies_total",
			Help: "Proxy-DHCP answers sent, by kind (offer, ack) and client architecture (option 93).",
		}, []string{"kind", "arch"}),
		tftpTransfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tftp_transfers_total",
			Help: "TFTP requests ended, by outcome (ok, probe, aborted, not-found, denied, busy, failed).",
		}, []string{"outcome"}),
		tftpBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "tftp_sent_bytes_total",
			Help: "File bytes sent over TFTP, whatever the outcome.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by handler (api, ipxe, artifacts, chunks, nbp, ...) and status code.",
		}, []string{"handler", "code"}),
		httpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_sent_bytes_total",
			Help: "HTTP response body bytes sent, by handler.",
		}, []string{"handler"}),
		scripts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ipxe_scripts_total",
			Help: "Per-machine iPXE scripts served, by outcome (installer, local, failed, unknown, ...).",
		}, []string{"outcome"}),
		installsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "installs_started_total",
			Help: "Install attempts started: an agent fetched its plan.",
		}),
		installsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "installs_finished_total",
			Help: "Install attempts ended, by result (success, failed, superseded).",
		}, []string{"result"}),
		installDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "install_duration_seconds",
			Help: "Wall time of install attempts, from plan fetch to the final report, by result.",
			// 30 s to about 2 h: a small image on a fast disk to a big one
			// over a slow link.
			Buckets: prometheus.ExponentialBuckets(30, 2, 9),
		}, []string{"result"}),
		installBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "install_written_bytes_total",
			Help: "Bytes agents reported writing to disks in successful installs.",
		}),
		installFetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "install_fetched_bytes_total",
			Help: "Compressed bytes of chunked images agents reported receiving in successful installs, by source: the appliance, or their peers (peer distribution).",
		}, []string{"source"}),
		profilesInvalid: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "profiles_invalid",
			Help: "1 while the profiles directory holds an edit that failed to load (the previous snapshot is served), else 0.",
		}),
		profilesReloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "profiles_reload_errors_total",
			Help: "Profile reloads that failed.",
		}),
		profilesReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "profiles_reloads_total",
			Help: "Profile loads by outcome: ok (the new profiles serve) or error (refused; the previous ones keep serving).",
		}, []string{"outcome"}),
		catalogVersions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "catalog_versions",
			Help: "Catalog versions by the outcome of the artifact check: ok, failed (an image missing or not what the catalog says, or an installer file missing: its hosts are held) or pending (not checked yet).",
		}, []string{"check"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "ready",
			Help: "1 once the appliance is ready (what /readyz answers 200 for): profiles loaded, store open, sockets bound, artifacts checked; else 0.",
		}),
		appliances: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "appliances",
			Help: "Appliances announced in the shared store, this one included (0 with the embedded store).",
		}),
		profilesDiffer: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "profiles_differ_from_peers",
			Help: "1 while this appliance's profiles digest differs from another appliance's sharing its store (their machines may get different answers), else 0.",
		}),
		sharedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "shared_events_total",
			Help: "Live events exchanged with the other appliances of a shared store: sent, received, dropped (not sent: the store did not take them, or the queue was full).",
		}, []string{"result"}),
		discoveredForgotten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "discovered_forgotten_total",
			Help: "Discovered records removed, by reason: cap (evicted for a new unknown MAC), expired (not seen for the TTL), admin (hosts --forget).",
		}, []string{"reason"}),
		powerActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "power_actions_total",
			Help: "Power operations through hosts' BMCs, by action (status, on, off, cycle), result (ok, failed) and failure kind (auth, unreachable, timeout, tls, bmc, config; \"\" when ok).",
		}, []string{"action", "result", "kind"}),
		bmcReachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "bmc_reachable",
			Help: "Whether the host's BMC answered its last power operation (1) or not (0): absent until one ran.",
		}, []string{"mac", "hostname"}),
		powerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "power_state",
			Help: "The host's power state at its last power operation: 1 on, 0 off, -1 unknown.",
		}, []string{"mac", "hostname"}),
		rolloutHosts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "rollout_hosts",
			Help: "Hosts of each staged rollout by result: waiting, cycling, installing, installed, failed.",
		}, []string{"rollout", "result"}),
		rolloutStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "rollout_status",
			Help: "1 for each staged rollout's current status (running, paused, halted, aborted, done).",
		}, []string{"rollout", "status"}),
	}
	for _, a := range []string{"status", "on", "off", "cycle"} {
		m.powerActions.WithLabelValues(a, "ok", "")
	}
	for _, r := range []string{"cap", "expired", "admin"} {
		m.discoveredForgotten.WithLabelValues(r)
	}
	for _, r := range results {
		m.installsFinished.WithLabelValues(r)
		m.installDuration.WithLabelValues(r)
	}
	for _, src := range []string{"appliance", "peers"} {
		m.installFetched.WithLabelValues(src)
	}
	for _, o := range []string{"ok", "error"} {
		m.profilesReloads.WithLabelValues(o)
	}
	for _, c := range []string{"ok", "failed", "pending"} {
		m.catalogVersions.WithLabelValues(c)
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "Always 1; its labels say which rackboot runs: version, VCS revision and Go version.",
	}, []string{"version", "revision", "goversion"})
	buildInfo.WithLabelValues(o.Build.Version, o.Build.Revision, o.Build.GoVersion).Set(1)
	m.reg.MustRegister(
		buildInfo, m.profilesReloads, m.catalogVersions, m.ready,
		m.dhcpReplies, m.tftpTransfers, m.tftpBytes, m.httpRequests, m.httpBytes, m.scripts,
		m.installsStarted, m.installsFinished, m.installDuration, m.installBytes, m.installFetched,
		m.profilesInvalid, m.profilesReloadErrors, m.discoveredForgotten,
		m.powerActions, m.bmcReachable, m.powerState, m.rolloutHosts, m.rolloutStatus,
		m.appliances, m.profilesDiffer, m.sharedEvents,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if o.Census != nil {
		m.reg.MustRegister(census{fn: o.Census})
	}
	return m
}

// Handler serves the metrics in the Prometheus exposition formats, for
// GET /metrics. A failing Census is logged and its gauges left out; the
// other metrics are still served.
func (m *Metrics) Handler() http.Handler {
	opts := promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}
	if m.log != nil {
		opts.ErrorLog = slog.NewLogLogger(m.log.Handler(), slog.LevelError)
	}
	return promhttp.HandlerFor(m.reg, opts)
}

// Registry is the registry the metrics are in, for tests and for adding
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// DHCPReply counts a proxy-DHCP answer. It fits dhcp.Server.OnReply.
func (m *Metrics) DHCPReply(kind, arch string) {
	m.dhcpReplies.WithLabelValues(kind, arch).Inc()
}

// TFTPTransfer counts an ended TFTP request and the bytes it sent. Adapt
// tftp.Server.OnTransfer with t.Outcome.String() and t.Bytes.
func (m *Metrics) TFTPTransfer(outcome string, bytes int64) {
	m.tftpTransfers.WithLabelValues(outcome).Inc()
	if bytes > 0 {
		m.tftpBytes.Add(float64(bytes))
	}
}

// HTTPRequest counts an answered HTTP request of a handler class. Use it
// from artifacts.Handler.OnServe, or wrap a handler with Instrument, not
// both.
func (m *Metrics) HTTPRequest(handler string, status int, bytes int64) {
	m.httpRequests.WithLabelValues(handler, strconv.Itoa(status)).Inc()
	if bytes > 0 {
		m.httpBytes.WithLabelValues(handler).Add(float64(bytes))
	}
}

// IPXEScript counts a per-machine script by outcome. It fits
// ipxe.Handler.OnScript; the MAC is not a label, since one series per
// machine would grow with the fleet.
func (m *Metrics) IPXEScript(_ net.HardwareAddr, outcome string) {
	m.scripts.WithLabelValues(outcome).Inc()
}

// InstallStarted counts an attempt that began (registry event "start").
func (m *Metrics) InstallStarted() { m.installsStarted.Inc() }

// InstallEnded counts an attempt that ended with result ("success",
// "failed" or "superseded"), its wall time, and the bytes it wrote
// (counted for successes only: a failed attempt's disk is rewritten).
func (m *Metrics) InstallEnded(result string, took time.Duration, written int64) {
	m.installsFinished.WithLabelValues(result).Inc()
	if took > 0 {
		m.installDuration.WithLabelValues(result).Observe(took.Seconds())
	}
	if result == "success" && written > 0 {
		m.installBytes.Add(float64(written))
	}
}

// InstallFetched counts what a successful install of a chunked image
// received: compressed bytes in all, of which peers came from its peers
// and the rest from the appliance.
func (m *Metrics) InstallFetched(fetched, peers int64) {
	if fetched <= 0 {
		return
	}
	peers = min(max(peers, 0), fetched)
	m.installFetched.WithLabelValues("appliance").Add(float64(fetched - peers))
	m.installFetched.WithLabelValues("peers").Add(float64(peers))
}

// HTTPConnections exports the HTTP connection limiter's counts: open
// connections, idle ones closed to make room at the cap (shed), and new
// ones closed at once because their address held its share (refused).
// Call it once, before serving.
func (m *Metrics) HTTPConnections(open func() int, shed, refused func() uint64) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "http_connections_open",
			Help: "HTTP connections holding a slot of --http-max-conns.",
		}, func() float64 { return float64(open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_connections_shed_total",
			Help: "Idle HTTP connections closed at the connection cap to make room for new ones.",
		}, func() float64 { return float64(shed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_connections_refused_total",
			Help: "New HTTP connections closed at once because their client address held --http-max-per-client.",
		}, func() float64 { return float64(refused()) }),
	)
}

// ProfilesLoaded records that the profiles directory is served as it is.
// Call it from profiles.Watcher.OnReload.
func (m *Metrics) ProfilesLoaded() {
	m.profilesInvalid.Set(0)
	m.profilesReloads.WithLabelValues("ok").Inc()
}

// CatalogChecked records the outcome of an artifact check: how many
// catalog versions are ok, failed and not checked yet.
func (m *Metrics) CatalogChecked(ok, failed, pending int) {
	m.catalogVersions.WithLabelValues("ok").Set(float64(ok))
	m.catalogVersions.WithLabelValues("failed").Set(float64(failed))
	m.catalogVersions.WithLabelValues("pending").Set(float64(pending))
}

// Ready records what /readyz answers.
func (m *Metrics) Ready(ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	m.ready.Set(v)
}

// Appliances records how many appliances share the store and whether this
// one's profiles differ from another's.
func (m *Metrics) Appliances(n int, profilesDiffer bool) {
	m.appliances.Set(float64(n))
	v := 0.0
	if profilesDiffer {
		v = 1
	}
	m.profilesDiffer.Set(v)
}

// SharedEvents counts n live events sent to, received from or dropped on
// the way to the other appliances (result "sent", "received", "dropped").
func (m *Metrics) SharedEvents(result string, n int) {
	m.sharedEvents.WithLabelValues(result).Add(float64(n))
}

// PowerAction records one power operation on a host through its BMC:
// kind is "" when it succeeded; reached whether the BMC answered (an auth
// or BMC error is an answer; unreachable, timeout and tls are not);
// state is on, off or unknown.
func (m *Metrics) PowerAction(mac, hostname, action, kind string, reached bool, state string) {
	result := "ok"
	if kind != "" {
		result = "failed"
	}
	m.powerActions.WithLabelValues(action, result, kind).Inc()
	if kind == "config" {
		return // the BMC was never asked
	}
	r := 0.0
	if reached {
		r = 1
	}
	m.bmcReachable.WithLabelValues(mac, hostname).Set(r)
	v := -1.0
	switch state {
	case "on":
		v = 1
	case "off":
		v = 0
	}
	m.powerState.WithLabelValues(mac, hostname).Set(v)
}

// Rollout records a staged rollout's status and its hosts by result;
// statuses it is not in are removed.
func (m *Metrics) Rollout(id, status string, hosts map[string]int) {
	for _, s := range []string{"running", "paused", "halted", "aborted", "done"} {
		if s == status {
			m.rolloutStatus.WithLabelValues(id, s).Set(1)
		} else {
			m.rolloutStatus.DeleteLabelValues(id, s)
		}
	}
	for _, r := range []string{"waiting", "cycling", "installing", "installed", "failed"} {
		m.rolloutHosts.WithLabelValues(id, r).Set(float64(hosts[r]))
	}
}

// ProfilesFailed records a reload that failed. Call it from
// profiles.Watcher.OnError.
func (m *Metrics) ProfilesFailed() {
	m.profilesInvalid.Set(1)
	m.profilesReloadErrors.Inc()
	m.profilesReloads.WithLabelValues("error").Inc()
}

// DiscoveredForgotten counts n discovered records removed for reason
// ("cap", "expired" or "admin"). Call it from registry.Registry.OnForget.
func (m *Metrics) DiscoveredForgotten(reason string, n int) {
	m.discoveredForgotten.WithLabelValues(reason).Add(float64(n))
}
