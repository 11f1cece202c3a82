package main

import (
	"context"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// The metrics package takes plain values; these adapt the registry to it.

// fleetCensus counts the fleet at scrape time the way the admin API lists
// it: the registry's records joined with the profiles, a host of the
// profiles never seen (or discovered, then added) counting as pending.
func fleetCensus(store registry.Store, fl api.Fleet, hold func(mac net.HardwareAddr, pendingVersion string) string) metrics.CensusFunc {
	return func(ctx context.Context) (metrics.Census, error) {
		recs, err := store.Hosts(ctx)
		if err != nil {
			return metrics.Census{}, err
		}
		cs := metrics.Census{States: map[string]int{}}
		for _, s := range []registry.State{registry.StateDiscovered, registry.StatePending, registry.StateInstalling, registry.StateInstalled, registry.StateFailed} {
			cs.States[string(s)] = 0 // a state with no host is 0, not absent
		}
		seen := make(map[string]bool, len(recs))
		versions := map[registry.Version]int{}
		for _, r := range recs {
			seen[r.MAC] = true
			state := r.State
			if state == registry.StateDiscovered {
				if mac, err := profiles.ParseMAC(r.MAC); err == nil {
					if _, ok := fl.Lookup(mac); ok {
						state = registry.StatePending
					}
				}
			}
			cs.States[string(state)]++
			if state == registry.StatePending && hold != nil {
				if mac, err := profiles.ParseMAC(r.MAC); err == nil && hold(mac, r.PendingVersion) != "" {
					cs.Held++
				}
			}
			if !r.Version.IsZero() {
				versions[r.Version]++
			}
		}
		for _, h := range fl.Hosts() {
			if !seen[profiles.MACKey(h.MAC)] {
				cs.States[string(registry.StatePending)]++
				if hold != nil && hold(h.MAC, "") != "" {
					cs.Held++
				}
			}
		}
		for v, n := range versions {
			cs.Versions = append(cs.Versions, metrics.VersionCount{Name: v.Name, Number: v.Number, Hosts: n})
		}
		slices.SortFunc(cs.Versions, func(a, b metrics.VersionCount) int {
			if a.Number != b.Number {
				return a.Number - b.Number
			}
			return strings.Compare(a.Name, b.Name)
		})
		return cs, nil
	}
}

// installMetrics returns a registry Notify that counts installs in m, then
// passes the change on to next (the live events), if set.
func installMetrics(m *metrics.Metrics, next func(registry.Change)) func(registry.Change) {
	return func(c registry.Change) {
		switch a := c.Attempt; {
		case c.Event == "start":
			m.InstallStarted()
		case a != nil && a.Result != "":
			// "done", "failed" and "superseded" carry the ended attempt.
			m.InstallEnded(string(a.Result), time.Duration(a.DurationMS)*time.Millisecond, a.BytesWritten)
			if a.Result == registry.ResultSuccess {
				m.InstallFetched(a.BytesFetched, a.BytesFetchedPeers)
			}
		}
		if next != nil {
			next(c)
		}
	}
}
