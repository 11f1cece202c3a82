package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/registry"
)

// TestFleetCensus: the metrics count the fleet as `rackboot hosts` lists
// it.
func TestFleetCensus(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	got, err := fleetCensus(e.reg.Store, e.set, nil)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := metrics.Census{
		States: map[string]int{"discovered": 1, "pending": 3, "installing": 1, "installed": 3, "failed": 0},
		Versions: []metrics.VersionCount{
			{Name: "demo-1.0", Number: 10, Hosts: 2},
			{Name: "demo-1.1", Number: 11, Hosts: 1},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestInstallMetrics: registry changes reach both the metrics and the
// live events.
func TestInstallMetrics(t *testing.T) {
	m := metrics.New(metrics.Options{})
	var events []string
	notify := installMetrics(m, func(c registry.Change) { events = append(events, c.Event) })
	for _, c := range []registry.Change{
		{Event: "boot"},
		{Event: "start", Attempt: &registry.Attempt{}},
		{Event: "failed", Attempt: &registry.Attempt{Result: registry.ResultFailed, DurationMS: 30000, BytesFetched: 99}},
		{Event: "start", Attempt: &registry.Attempt{}},
		{Event: "done", Attempt: &registry.Attempt{Result: registry.ResultSuccess, DurationMS: int64(5 * time.Minute / time.Millisecond), BytesWritten: 1 << 30,
			BytesFetched: 3 << 20, BytesFetchedPeers: 2 << 20}},
		{Event: "reinstall"},
	} {
		notify(c)
	}
	if diff := cmp.Diff([]string{"boot", "start", "failed", "start", "done", "reinstall"}, events); diff != "" {
		t.Errorf("events passed on (-want +got):\n%s", diff)
	}
	want := `
# HELP rackboot_installs_started_total Install attempts started: an agent fetched its plan.
# TYPE rackboot_installs_started_total counter
rackboot_installs_started_total 2
# HELP rackboot_installs_finished_total Install attempts ended, by result (success, failed, superseded).
# TYPE rackboot_installs_finished_total counter
rackboot_installs_finished_total{result="failed"} 1
rackboot_installs_finished_total{result="success"} 1
rackboot_installs_finished_total{result="superseded"} 0
# HELP rackboot_install_written_bytes_total Bytes agents reported writing to disks in successful installs.
# TYPE rackboot_install_written_bytes_total counter
rackboot_install_written_bytes_total 1.073741824e+09
# HELP rackboot_install_fetched_bytes_total Compressed bytes of chunked images agents reported receiving in successful installs, by source: the appliance, or their peers (peer distribution).
# TYPE rackboot_install_fetched_bytes_total counter
rackboot_install_fetched_bytes_total{source="appliance"} 1.048576e+06
rackboot_install_fetched_bytes_total{source="peers"} 2.097152e+06
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"rackboot_installs_started_total", "rackboot_installs_finished_total", "rackboot_install_written_bytes_total", "rackboot_install_fetched_bytes_total"); err != nil {
		t.Error(err)
	}
}
