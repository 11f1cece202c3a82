package rollout

import (
	"slices"
	"time"
)

// Status is where a rollout is.
type Status string

// The statuses of a rollout. Running, paused and halted rollouts hold
// their hosts (Engine.Start refuses another rollout over any of them);
// aborted and done are final.
const (
	// StatusRunning: waves start and are judged.
	StatusRunning Status = "running"
	// StatusPaused: the current wave's hosts go on installing and are
	// watched, but the wave is not judged and no new wave starts.
	StatusPaused Status = "paused"
	// StatusHalted: a wave had more failed hosts than Spec.MaxFailures.
	// Resume retries that wave's failed hosts.
	StatusHalted Status = "halted"
	// StatusAborted: stopped for good by an admin.
	StatusAborted Status = "aborted"
	// StatusDone: every wave was judged healthy.
	StatusDone Status = "done"
)

// Active reports whether s holds its hosts: running, paused or halted.
func (s Status) Active() bool {
	return s == StatusRunning || s == StatusPaused || s == StatusHalted
}

// HostResult is where one host of a rollout is.
type HostResult string

// The results of a host.
const (
	// ResultWaiting: its wave has not started it yet (a later wave, a
	// wave in its soak, or a failed host to be retried after Resume).
	ResultWaiting HostResult = "waiting"
	// ResultCycling: reinstall requested and the power cycle decided,
	// saved before the BMC is asked. A host found cycling after a restart
	// is treated as cycled: it is watched, never cycled twice.
	ResultCycling HostResult = "cycling"
	// ResultInstalling: power-cycled; watched until it installs, fails or
	// times out.
	ResultInstalling HostResult = "installing"
	// ResultInstalled: installed Spec.Version by an attempt of this
	// rollout.
	ResultInstalled HostResult = "installed"
	// ResultFailed: its reinstall request or power cycle failed, an
	// attempt of this rollout failed, the registry marked it failed, or it
	// did not install within Spec.WaveTimeout of its power cycle.
	ResultFailed HostResult = "failed"
)

// decided reports whether r is a host's final result for its wave.
func (r HostResult) decided() bool { return r == ResultInstalled || r == ResultFailed }

// watched reports whether a host with result r is waiting for its
// install.
func (r HostResult) watched() bool { return r == ResultCycling || r == ResultInstalling }

// Host is one host of a rollout.
type Host struct {
	MAC string `json:"mac"`
	// Wave is the index of the host's wave in Rollout.Waves (0-based; the
	// events count waves from 1).
	Wave   int        `json:"wave"`
	Result HostResult `json:"result"`
	// Error says why the host failed.
	Error string `json:"error,omitempty"`
	// Attempt is the registry's LastID for the host when its reinstall was
	// requested: attempts with a greater ID are this rollout's.
	Attempt int `json:"attempt"`
	// Tries counts the times the rollout started the host: 1 after its
	// wave started, one more each time Resume retried it.
	Tries int `json:"tries"`
	// Since is when the host entered Result; for cycling and installing,
	// when its power cycle was decided and done, from which WaveTimeout
	// runs.
	Since time.Time `json:"since,omitzero"`
}

// Event is one line of a rollout's history, for people.
type Event struct {
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// MaxEvents is how many events a rollout keeps; older ones are dropped.
const MaxEvents = 100

// Rollout is one staged rollout and everything needed to resume it after a
// restart. Rollouts are values: the Engine hands out copies.
type Rollout struct {
	// ID is "r" and a number, unique among the stored rollouts.
	ID     string `json:"id"`
	Spec   Spec   `json:"spec"`
	Status Status `json:"status"`
	// Wave is the index of the current wave in Waves: the one being
	// installed, or the next to start (its hosts waiting) after the
	// previous one was judged healthy.
	Wave int `json:"wave"`
	// Next is when the current wave may start, if its hosts are waiting:
	// the end of the previous wave's soak. Zero means at once.
	Next time.Time `json:"next,omitzero"`
	// Waves are the MACs of each wave, from Plan.
	Waves [][]string `json:"waves"`
	// Hosts are Spec.Hosts in wave order.
	Hosts   []Host    `json:"hosts"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Reason says why the rollout halted or was aborted.
	Reason string `json:"reason,omitempty"`
	// Events are the last MaxEvents events, oldest first.
	Events []Event `json:"events,omitempty"`
}

// Host returns the host mac of r, or nil.
func (r *Rollout) Host(mac string) *Host {
	for i := range r.Hosts {
		if r.Hosts[i].MAC == mac {
			return &r.Hosts[i]
		}
	}
	return nil
}

// clone returns a deep copy of r, so that copies handed out never share
// memory with the Engine's.
func (r Rollout) clone() Rollout {
	c := r
	c.Spec.Hosts = slices.Clone(r.Spec.Hosts)
	c.Waves = make([][]string, len(r.Waves))
	for i, w := range r.Waves {
		c.Waves[i] = slices.Clone(w)
	}
	c.Hosts = slices.Clone(r.Hosts)
	c.Events = slices.Clone(r.Events)
	return c
}

// event appends a line to r's history, keeping the last MaxEvents.
func (r *Rollout) event(at time.Time, text string) {
	r.Events = append(r.Events, Event{At: at, Text: text})
	if n := len(r.Events) - MaxEvents; n > 0 {
		r.Events = slices.Delete(r.Events, 0, n)
	}
}

// wave returns the hosts of wave w.
func (r *Rollout) wave(w int) []*Host {
	var hs []*Host
	for i := range r.Hosts {
		if r.Hosts[i].Wave == w {
			hs = append(hs, &r.Hosts[i])
		}
	}
	return hs
}
