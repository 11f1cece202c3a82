package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/rollout"
)

// rolloutPrefix is the key prefix of rollouts in the registry's blob
// space: "rollout/r3".
const rolloutPrefix = "rollout/"

// rolloutEnv is what the rollout engine drives in the appliance: the
// registry (reinstall requests, hosts, the rollouts' own records) and
// the BMCs through powerControl (docs/DESIGN.md, "Staged rollouts").
type rolloutEnv struct {
	reg   *registry.Registry
	fleet api.Fleet
	power *powerControl
}

// Reinstall implements rollout.Env.
func (e *rolloutEnv) Reinstall(ctx context.Context, mac, version, by, reason string) (int, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return 0, err
	}
	host, ok := e.fleet.Lookup(hw)
	if !ok {
		return 0, errors.New("no longer in the profiles")
	}
	h, err := e.reg.Reinstall(ctx, hw, registry.ReinstallRequest{Reason: reason, Version: version, By: by, Hostname: host.Hostname})
	if err != nil {
		return 0, err
	}
	return h.LastID, nil
}

// PowerCycle implements rollout.Env: a one-time network boot and a power
// cycle of each host through its BMC, paced as any power request.
func (e *rolloutEnv) PowerCycle(ctx context.Context, macs []string, by string) map[string]error {
	errs := map[string]error{}
	var hosts []*profiles.Host
	for _, m := range macs {
		hw, err := net.ParseMAC(m)
		if err != nil {
			errs[m] = err
			continue
		}
		h, ok := e.fleet.Lookup(hw)
		if !ok {
			errs[m] = errors.New("no longer in the profiles")
			continue
		}
		hosts = append(hosts, h)
	}
	for _, r := range e.power.Run(ctx, hosts, api.PowerCycle, true, api.PowerOptions{}, by, nil) {
		if !r.OK {
			errs[r.MAC] = fmt.Errorf("%s: %s", r.Kind, r.Error)
		}
	}
	return errs
}

// Host implements rollout.Env.
func (e *rolloutEnv) Host(ctx context.Context, mac string, afterID int) (registry.HostRecord, []registry.Attempt, error) {
	h, err := e.reg.Store.Host(ctx, mac)
	if errors.Is(err, registry.ErrNotFound) {
		return registry.HostRecord{MAC: mac, State: registry.StatePending}, nil, nil
	}
	if err != nil {
		return h, nil, err
	}
	if h.LastID <= afterID {
		return h, nil, nil
	}
	all, err := e.reg.Store.History(ctx, mac)
	if err != nil {
		return h, nil, err
	}
	var after []registry.Attempt
	for _, a := range all {
		if a.ID > afterID {
			after = append(after, a)
		}
	}
	return h, after, nil
}

// Load implements rollout.Env.
func (e *rolloutEnv) Load(ctx context.Context) ([]rollout.Rollout, error) {
	blobs, err := e.reg.Store.Blobs(ctx, rolloutPrefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(blobs))
	for k := range blobs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []rollout.Rollout
	for _, k := range keys {
		var r rollout.Rollout
		if err := json.Unmarshal(blobs[k], &r); err != nil {
			return nil, fmt.Errorf("rollout %s in the registry: %w", k, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Save implements rollout.Env.
func (e *rolloutEnv) Save(ctx context.Context, r rollout.Rollout) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return e.reg.Store.PutBlob(ctx, rolloutPrefix+r.ID, b)
}

// rolloutNotify records a rollout's status and hosts by result in the
// metrics and, when its events grew, publishes the newest for watch.
func rolloutNotify(m *metrics.Metrics, events *api.Events) func(rollout.Rollout) {
	seen := map[string]int{} // events shown, per rollout; Notify calls are serialised
	return func(r rollout.Rollout) {
		counts := map[string]int{}
		for _, h := range r.Hosts {
			counts[string(h.Result)]++
		}
		m.Rollout(r.ID, string(r.Status), counts)
		if events == nil || len(r.Events) == 0 {
			return
		}
		last := r.Events[len(r.Events)-1]
		if n := len(r.Events); n == seen[r.ID] && n < rollout.MaxEvents {
			return
		}
		seen[r.ID] = len(r.Events)
		events.Publish(api.Event{Type: api.EventRollout, Data: api.RolloutEvent{ID: r.ID, Status: string(r.Status),
			Wave: min(r.Wave+1, len(r.Waves)), Waves: len(r.Waves), Text: last.Text, At: last.At}})
	}
}
