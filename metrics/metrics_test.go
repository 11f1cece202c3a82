package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serve starts the /metrics handler of m on loopback.
func serve(t *testing.T, m *Metrics) string {
	t.Helper()
	ts := httptest.NewServer(m.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestHooks(t *testing.T) {
	m := New(Options{})
	m.DHCPReply("offer", "efi-x64")
	m.DHCPReply("offer", "efi-x64")
	m.DHCPReply("ack", "bios")
	m.TFTPTransfer("ok", 1<<20)
	m.TFTPTransfer("probe", 0)
	m.TFTPTransfer("ok", 1024)
	m.HTTPRequest("artifacts", 200, 4096)
	m.HTTPRequest("artifacts", 404, 19)
	m.HTTPRequest("artifacts", 200, 0)
	m.IPXEScript(nil, "installer")
	m.IPXEScript(nil, "local")
	m.IPXEScript(nil, "local")
	m.ProfilesFailed()
	m.ProfilesFailed()
	m.ProfilesLoaded()

	tests := []struct {
		name   string
		metric string
		want   string
	}{
		{"dhcp", "rackboot_dhcp_replies_total", `
# HELP rackboot_dhcp_replies_total Proxy-DHCP answers sent, by kind (offer, ack) and client architecture (option 93).
# TYPE rackboot_dhcp_replies_total counter
rackboot_dhcp_replies_total{arch="bios",kind="ack"} 1
rackboot_dhcp_replies_total{arch="efi-x64",kind="offer"} 2
`},
		{"tftp transfers", "rackboot_tftp_transfers_total", `
# HELP rackboot_tftp_transfers_total TFTP requests ended, by outcome (ok, probe, aborted, not-found, denied, busy, failed).
# TYPE rackboot_tftp_transfers_total counter
rackboot_tftp_transfers_total{outcome="ok"} 2
rackboot_tftp_transfers_total{outcome="probe"} 1
`},
		{"tftp bytes", "rackboot_tftp_sent_bytes_total", `
# HELP rackboot_tftp_sent_bytes_total File bytes sent over TFTP, whatever the outcome.
# TYPE rackboot_tftp_sent_bytes_total counter
rackboot_tftp_sent_bytes_total 1.049600e+06
`},
		{"http requests", "rackboot_http_requests_total", `
# HELP rackboot_http_requests_total HTTP requests answered, by handler (api, ipxe, artifacts, chunks, nbp, ...) and status code.
# TYPE rackboot_http_requests_total counter
rackboot_http_requests_total{code="200",handler="artifacts"} 2
rackboot_http_requests_total{code="404",handler="artifacts"} 1
`},
		{"http bytes", "rackboot_http_sent_bytes_total", `
# HELP rackboot_http_sent_bytes_total HTTP response body bytes sent, by handler.
# TYPE rackboot_http_sent_bytes_total counter
rackboot_http_sent_bytes_total{handler="artifacts"} 4115
`},
		{"ipxe scripts", "rackboot_ipxe_scripts_total", `
# HELP rackboot_ipxe_scripts_total Per-machine iPXE scripts served, by outcome (installer, local, failed, unknown, ...).
# TYPE rackboot_ipxe_scripts_total counter
rackboot_ipxe_scripts_total{outcome="installer"} 1
rackboot_ipxe_scripts_total{outcome="local"} 2
`},
		{"profiles invalid", "rackboot_profiles_invalid", `
# HELP rackboot_profiles_invalid 1 while the profiles directory holds an edit that failed to load (the previous snapshot is served), else 0.
# TYPE rackboot_profiles_invalid gauge
rackboot_profiles_invalid 0
`},
		{"profiles errors", "rackboot_profiles_reload_errors_total", `
# HELP rackboot_profiles_reload_errors_total Profile reloads that failed.
# TYPE rackboot_profiles_reload_errors_total counter
rackboot_profiles_reload_errors_total 2
`},
	}
	url := serve(t, m)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := testutil.ScrapeAndCompare(url, strings.NewReader(tt.want), tt.metric); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestInstalls(t *testing.T) {
	m := New(Options{})
	before := `
# HELP rackboot_installs_finished_total Install attempts ended, by result (success, failed, superseded).
# TYPE rackboot_installs_finished_total counter
rackboot_installs_finished_total{result="failed"} 0
rackboot_installs_finished_total{result="success"} 0
rackboot_installs_finished_total{result="superseded"} 0
`
	url := serve(t, m)
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(before), "rackboot_installs_finished_total"); err != nil {
		t.Errorf("before any install, every result is 0: %v", err)
	}

	m.InstallStarted()
	m.InstallStarted()
	m.InstallStarted()
	m.InstallEnded("success", 95*time.Second, 2<<30)
	m.InstallEnded("failed", 20*time.Second, 0)
	m.InstallEnded("superseded", 0, 0)
	m.InstallEnded("failed", 0, 1<<20) // a failure's bytes are not "written"

	want := `
# HELP rackboot_installs_started_total Install attempts started: an agent fetched its plan.
# TYPE rackboot_installs_started_total counter
rackboot_installs_started_total 3
# HELP rackboot_installs_finished_total Install attempts ended, by result (success, failed, superseded).
# TYPE rackboot_installs_finished_total counter
rackboot_installs_finished_total{result="failed"} 2
rackboot_installs_finished_total{result="success"} 1
rackboot_installs_finished_total{result="superseded"} 1
# HELP rackboot_install_written_bytes_total Bytes agents reported writing to disks in successful installs.
# TYPE rackboot_install_written_bytes_total counter
rackboot_install_written_bytes_total 2.147483648e+09
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want),
		"rackboot_installs_started_total", "rackboot_installs_finished_total", "rackboot_install_written_bytes_total"); err != nil {
		t.Error(err)
	}

	hist := `
# HELP rackboot_install_duration_seconds Wall time of install attempts, from plan fetch to the final report, by result.
# TYPE rackboot_install_duration_seconds histogram
rackboot_install_duration_seconds_bucket{result="failed",le="30"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="60"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="120"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="240"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="480"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="960"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="1920"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="3840"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="7680"} 1
rackboot_install_duration_seconds_bucket{result="failed",le="+Inf"} 1
rackboot_install_duration_seconds_sum{result="failed"} 20
rackboot_install_duration_seconds_count{result="failed"} 1
rackboot_install_duration_seconds_bucket{result="success",le="30"} 0
rackboot_install_duration_seconds_bucket{result="success",le="60"} 0
rackboot_install_duration_seconds_bucket{result="success",le="120"} 1
rackboot_install_duration_seconds_bucket{result="success",le="240"} 1
rackboot_install_duration_seconds_bucket{result="success",le="480"} 1
rackboot_install_duration_seconds_bucket{result="success",le="960"} 1
rackboot_install_duration_seconds_bucket{result="success",le="1920"} 1
rackboot_install_duration_seconds_bucket{result="success",le="3840"} 1
rackboot_install_duration_seconds_bucket{result="success",le="7680"} 1
rackboot_install_duration_seconds_bucket{result="success",le="+Inf"} 1
rackboot_install_duration_seconds_sum{result="success"} 95
rackboot_install_duration_seconds_count{result="success"} 1
rackboot_install_duration_seconds_bucket{result="superseded",le="30"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="60"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="120"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="240"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="480"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="960"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="1920"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="3840"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="7680"} 0
rackboot_install_duration_seconds_bucket{result="superseded",le="+Inf"} 0
rackboot_install_duration_seconds_sum{result="superseded"} 0
rackboot_install_duration_seconds_count{result="superseded"} 0
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(hist), "rackboot_install_duration_seconds"); err != nil {
		t.Error(err)
	}
}

func TestCensus(t *testing.T) {
	var mu sync.Mutex
	cs := Census{
		States:   map[string]int{"pending": 3, "installing": 1, "installed": 2, "failed": 0, "discovered": 0},
		Versions: []VersionCount{{Name: "demo-1.0", Number: 10, Hosts: 2}, {Name: "demo-1.1", Number: 11, Hosts: 1}},
		Held:     2,
	}
	var err error
	var logs bytes.Buffer
	m := New(Options{
		Census: func(ctx context.Context) (Census, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("census without a deadline")
			}
			mu.Lock()
			defer mu.Unlock()
			return cs, err
		},
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	url := serve(t, m)
	want := `
# HELP rackboot_hosts Hosts by install state, counted at scrape time (hosts of the profiles never seen are pending).
# TYPE rackboot_hosts gauge
rackboot_hosts{state="discovered"} 0
rackboot_hosts{state="failed"} 0
rackboot_hosts{state="installed"} 2
rackboot_hosts{state="installing"} 1
rackboot_hosts{state="pending"} 3
# HELP rackboot_hosts_by_version Hosts by installed version (name and catalog number), counted at scrape time.
# TYPE rackboot_hosts_by_version gauge
rackboot_hosts_by_version{number="10",version="demo-1.0"} 2
rackboot_hosts_by_version{number="11",version="demo-1.1"} 1
# HELP rackboot_hosts_held Pending hosts held back from their installer because their version's image is missing or not what the catalog says, counted at scrape time.
# TYPE rackboot_hosts_held gauge
rackboot_hosts_held 2
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want), "rackboot_hosts", "rackboot_hosts_by_version", "rackboot_hosts_held"); err != nil {
		t.Error(err)
	}

	// The fleet changes between scrapes: the gauges follow, nothing
	// stale stays.
	mu.Lock()
	cs = Census{States: map[string]int{"installed": 3}, Versions: []VersionCount{{Name: "demo-1.1", Number: 11, Hosts: 3}}}
	mu.Unlock()
	want = `
# HELP rackboot_hosts_by_version Hosts by installed version (name and catalog number), counted at scrape time.
# TYPE rackboot_hosts_by_version gauge
rackboot_hosts_by_version{number="11",version="demo-1.1"} 3
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want), "rackboot_hosts_by_version"); err != nil {
		t.Error(err)
	}

	// A failing census leaves its gauges out and the rest served.
	mu.Lock()
	err = errors.New("registry unavailable")
	mu.Unlock()
	m.DHCPReply("offer", "bios")
	resp, gerr := http.Get(url)
	if gerr != nil {
		t.Fatal(gerr)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("scrape with a failing census: status %d", resp.StatusCode)
	}
	if !strings.Contains(string(body), `rackboot_dhcp_replies_total{arch="bios",kind="offer"} 1`) {
		t.Errorf("the other metrics are not served:\n%s", body)
	}
	if strings.Contains(string(body), "rackboot_hosts{") {
		t.Errorf("the fleet gauges are served from a failed census:\n%s", body)
	}
	if !strings.Contains(logs.String(), "registry unavailable") {
		t.Errorf("the census error is not logged: %q", logs.String())
	}
}

func TestRuntimeCollectors(t *testing.T) {
	n, err := testutil.GatherAndCount(New(Options{}).Registry(), "go_goroutines")
	if err != nil || n != 1 {
		t.Errorf("go_goroutines: %d series, %v", n, err)
	}
}

// TestOwnRegistry: two Metrics in one process do not share counters, as
// two appliances in one test must not.
func TestOwnRegistry(t *testing.T) {
	a, b := New(Options{}), New(Options{})
	a.InstallStarted()
	if got := testutil.ToFloat64(b.installsStarted); got != 0 {
		t.Errorf("b counted a's install: %v", got)
	}
	if got := testutil.ToFloat64(a.installsStarted); got != 1 {
		t.Errorf("a's installs = %v, want 1", got)
	}
}

// TestOperatorGauges: build info, readiness, reload outcomes and the
// catalog check's counts, as the daemon sets them.
func TestOperatorGauges(t *testing.T) {
	m := New(Options{Build: BuildInfo{Version: "v1.2.3", Revision: "abc123", GoVersion: "go1.25.0"}})
	m.ProfilesLoaded()
	m.ProfilesFailed()
	m.ProfilesLoaded()
	m.CatalogChecked(3, 1, 0)
	m.Ready(true)
	want := `
# HELP rackboot_build_info Always 1; its labels say which rackboot runs: version, VCS revision and Go version.
# TYPE rackboot_build_info gauge
rackboot_build_info{goversion="go1.25.0",revision="abc123",version="v1.2.3"} 1
# HELP rackboot_catalog_versions Catalog versions by the outcome of the artifact check: ok, failed (an image missing or not what the catalog says, or an installer file missing: its hosts are held) or pending (not checked yet).
# TYPE rackboot_catalog_versions gauge
rackboot_catalog_versions{check="failed"} 1
rackboot_catalog_versions{check="ok"} 3
rackboot_catalog_versions{check="pending"} 0
# HELP rackboot_profiles_reloads_total Profile loads by outcome: ok (the new profiles serve) or error (refused; the previous ones keep serving).
# TYPE rackboot_profiles_reloads_total counter
rackboot_profiles_reloads_total{outcome="error"} 1
rackboot_profiles_reloads_total{outcome="ok"} 2
# HELP rackboot_ready 1 once the appliance is ready (what /readyz answers 200 for): profiles loaded, store open, sockets bound, artifacts checked; else 0.
# TYPE rackboot_ready gauge
rackboot_ready 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"rackboot_build_info", "rackboot_catalog_versions", "rackboot_profiles_reloads_total", "rackboot_ready"); err != nil {
		t.Error(err)
	}
}

// TestPowerAndRolloutMetrics: a power action sets the host's BMC
// reachability and power state (a config error, which never asked the
// BMC, leaves them); a rollout's status series is the current one only.
func TestPowerAndRolloutMetrics(t *testing.T) {
	m := New(Options{})
	m.PowerAction("52:54:00:00:00:01", "n1", "on", "", true, "on")
	m.PowerAction("52:54:00:00:00:02", "n2", "cycle", "timeout", false, "unknown")
	m.PowerAction("52:54:00:00:00:03", "n3", "cycle", "config", false, "unknown")
	m.Rollout("r1", "running", map[string]int{"installing": 2, "waiting": 4})
	m.Rollout("r1", "halted", map[string]int{"failed": 2, "installed": 2, "waiting": 2})
	var b strings.Builder
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			fmt.Fprintf(&b, "%s{%s} %g\n", f.GetName(), strings.Join(labels, ","), v)
		}
	}
	got := b.String()
	for _, want := range []string{
		"rackboot_bmc_reachable{hostname=n1,mac=52:54:00:00:00:01} 1",
		"rackboot_bmc_reachable{hostname=n2,mac=52:54:00:00:00:02} 0",
		"rackboot_power_state{hostname=n1,mac=52:54:00:00:00:01} 1",
		"rackboot_power_state{hostname=n2,mac=52:54:00:00:00:02} -1",
		"rackboot_power_actions_total{action=cycle,kind=timeout,result=failed} 1",
		"rackboot_power_actions_total{action=cycle,kind=config,result=failed} 1",
		"rackboot_rollout_status{rollout=r1,status=halted} 1",
		"rackboot_rollout_hosts{result=failed,rollout=r1} 2",
		"rackboot_rollout_hosts{result=installing,rollout=r1} 0",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("no %s", want)
		}
	}
	for _, absent := range []string{"mac=52:54:00:00:00:03", "status=running"} {
		if strings.Contains(got, absent) {
			t.Errorf("%s is there", absent)
		}
	}
}
