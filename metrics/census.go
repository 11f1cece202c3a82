package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Census is the fleet counted at one moment.
type Census struct {
	// States counts hosts by state name. Include the states with no host
	// as 0, so that their series do not vanish.
	States map[string]int
	// Versions counts hosts by installed version.
	Versions []VersionCount
	// Held counts the pending hosts held back from their installer
	// because their version failed the catalog check.
	Held int
}

// VersionCount is how many hosts run one version.
type VersionCount struct {
	Name   string
	Number int
	Hosts  int
}

// CensusFunc counts the fleet. It is called at each scrape, from the
// scrape's goroutine, and must be safe for concurrent use.
type CensusFunc func(context.Context) (Census, error)

// censusTimeout bounds a census: a scrape must not hang on a stuck store.
const censusTimeout = 10 * time.Second

var (
	hostsDesc = prometheus.NewDesc(namespace+"_hosts",
		"Hosts by install state, counted at scrape time (hosts of the profiles never seen are pending).",
		[]string{"state"}, nil)
	versionsDesc = prometheus.NewDesc(namespace+"_hosts_by_version",
		"Hosts by installed version (name and catalog number), counted at scrape time.",
		[]string{"version", "number"}, nil)
	heldDesc = prometheus.NewDesc(namespace+"_hosts_held",
		"Pending hosts held back from their installer because their version's image is missing or not what the catalog says, counted at scrape time.",
		nil, nil)
)

// census is a collector computing the fleet gauges at scrape time: the
// registry is the truth, and counting it when asked cannot drift from it
// the way gauges kept up to date by events would.
type census struct {
	fn CensusFunc
}

func (c census) Describe(ch chan<- *prometheus.Desc) {
	ch <- hostsDesc
	ch <- heldDesc
	ch <- versionsDesc
}

func (c census) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), censusTimeout)
	defer cancel()
	cs, err := c.fn(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(hostsDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(cs.Held))
	for state, n := range cs.States {
		ch <- prometheus.MustNewConstMetric(hostsDesc, prometheus.GaugeValue, float64(n), state)
	}
	for _, v := range cs.Versions {
		ch <- prometheus.MustNewConstMetric(versionsDesc, prometheus.GaugeValue, float64(v.Hosts), v.Name, strconv.Itoa(v.Number))
	}
}
