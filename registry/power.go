package registry

import (
	"context"
	"net"
	"time"
)

// MaxPowerActions is how many power actions a host's record keeps, the
// newest last.
const MaxPowerActions = 32

// PowerAction is one power operation through a host's BMC (docs/DESIGN.md,
// "Power"): who asked, when, what and how it ended. The host's history
// shows them beside its install attempts. Nothing of the BMC's
// credential is ever in it.
type PowerAction struct {
	At time.Time `json:"at"`
	// By is who asked: "NAME via admin API from IP", or "rollout r3".
	By string `json:"by,omitempty"`
	// Action is on, off or cycle.
	Action string `json:"action"`
	// NetBoot: a one-time network boot was set before it.
	NetBoot bool `json:"netboot,omitempty"`
	// Result is "ok" or "failed".
	Result string `json:"result"`
	// State is the power state read at the end: on, off or unknown.
	State string `json:"state,omitempty"`
	// Kind classifies a failure: auth, unreachable, timeout, tls, bmc,
	// config.
	Kind       string `json:"kind,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms,omitempty"`
}

// Power results.
const (
	PowerOK     = "ok"
	PowerFailed = "failed"
)

// RecordPower appends a power action to the host's record, keeping the
// last MaxPowerActions. A host of the profiles without a record yet (never
// booted) gets one, pending, as a reinstall would make it: hostname names
// it.
func (r *Registry) RecordPower(ctx context.Context, mac net.HardwareAddr, hostname string, p PowerAction) (HostRecord, error) {
	now := r.now()
	if p.At.IsZero() {
		p.At = now
	}
	p.At = p.At.UTC()
	h, err := r.Store.Update(ctx, mac.String(), func(h *HostRecord, exists bool) (*Attempt, error) {
		if !exists {
			h.State, h.Since = StatePending, now
		}
		if h.Hostname == "" {
			h.Hostname = hostname
		}
		h.Power = append(h.Power, p)
		if n := len(h.Power) - MaxPowerActions; n > 0 {
			h.Power = append([]PowerAction(nil), h.Power[n:]...)
		}
		h.UpdatedAt = now
		return nil, nil
	})
	if err != nil {
		return HostRecord{}, err
	}
	r.changed("power", h, nil)
	r.log().Info("power action", "mac", h.MAC, "action", p.Action, "netboot", p.NetBoot, "result", p.Result, "state", p.State, "kind", p.Kind, "by", p.By)
	return h, nil
}
