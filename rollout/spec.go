package rollout

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrSpec is wrapped by every error of Plan: the spec cannot be rolled
// out as given (an API answers 400).
var ErrSpec = errors.New("rollout: invalid spec")

// DefaultWaveTimeout is Spec.WaveTimeout when it is zero.
const DefaultWaveTimeout = 30 * time.Minute

// Spec is what an admin asks for: one catalog version on a fixed selection
// of machines, in waves.
type Spec struct {
	// Version is the catalog version to install (the registry's
	// PendingVersion for each host).
	Version string `json:"version"`
	// Hosts are the MACs selected; the caller resolved the selectors. The
	// waves take them in this order; Engine.Start stores them
	// canonical (lower-case, colon-separated).
	Hosts []string `json:"hosts"`
	// Canary is the size of the first wave; 0 means no separate canary
	// wave (the first wave is an ordinary one).
	Canary int `json:"canary,omitempty"`
	// WaveSize is the number of hosts of each later wave; WavePercent the
	// same as a percentage of len(Hosts), rounded up, at least 1. Give
	// exactly one of them.
	WaveSize    int `json:"wave_size,omitempty"`
	WavePercent int `json:"wave_percent,omitempty"`
	// MaxFailures is how many failed hosts a wave tolerates; one more
	// halts the rollout. Zero: any failure halts it.
	MaxFailures int `json:"max_failures,omitempty"`
	// WaveTimeout is how long after its power cycle a host may take to
	// install before it counts as failed. Zero means DefaultWaveTimeout.
	WaveTimeout time.Duration `json:"wave_timeout,omitempty"`
	// Soak is how long to wait after a healthy wave before the next one
	// starts: time for a problem the install did not show to surface.
	Soak time.Duration `json:"soak,omitempty"`
	// By and Reason say who asked and why; Reason goes into each host's
	// reinstall reason.
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Plan validates spec and cuts its hosts into waves: the canary wave of
// Spec.Canary hosts, if any, then waves of WaveSize hosts (or
// WavePercent of all the hosts), the last one holding what is left. The
// MACs of the waves are canonical. Every error wraps ErrSpec and says what
// to change.
func Plan(spec Spec) ([][]string, error) {
	n := len(spec.Hosts)
	switch {
	case spec.Version == "":
		return nil, specErr("no version: name the catalog version to install")
	case n == 0:
		return nil, specErr("no hosts selected")
	case spec.Canary < 0:
		return nil, specErr("canary is %d: give 0 (no canary wave) or more", spec.Canary)
	case spec.Canary > n:
		return nil, specErr("canary of %d is more than the %d hosts selected", spec.Canary, n)
	case spec.WaveSize < 0:
		return nil, specErr("wave size is %d: give 1 or more", spec.WaveSize)
	case spec.WavePercent < 0 || spec.WavePercent > 100:
		return nil, specErr("wave percent is %d: give 1 to 100", spec.WavePercent)
	case spec.WaveSize > 0 && spec.WavePercent > 0:
		return nil, specErr("both a wave size and a wave percent given: give one")
	case spec.WaveSize == 0 && spec.WavePercent == 0:
		return nil, specErr("no wave size or wave percent given: give one")
	case spec.MaxFailures < 0:
		return nil, specErr("max failures is %d: give 0 or more", spec.MaxFailures)
	case spec.WaveTimeout < 0:
		return nil, specErr("wave timeout is %v: give a positive duration, or 0 for %v", spec.WaveTimeout, DefaultWaveTimeout)
	case spec.Soak < 0:
		return nil, specErr("soak is %v: give a positive duration or 0", spec.Soak)
	}
	macs := make([]string, n)
	seen := make(map[string]bool, n)
	for i, h := range spec.Hosts {
		hw, err := net.ParseMAC(h)
		if err != nil || len(hw) != 6 {
			return nil, specErr("host %q is not a MAC address", h)
		}
		m := hw.String()
		if seen[m] {
			return nil, specErr("host %s is selected twice", m)
		}
		seen[m], macs[i] = true, m
	}
	size := spec.WaveSize
	if spec.WavePercent > 0 {
		size = max(1, (n*spec.WavePercent+99)/100)
	}
	var waves [][]string
	if spec.Canary > 0 {
		waves = append(waves, macs[:spec.Canary:spec.Canary])
		macs = macs[spec.Canary:]
	}
	for len(macs) > 0 {
		k := min(size, len(macs))
		waves = append(waves, macs[:k:k])
		macs = macs[k:]
	}
	return waves, nil
}

func specErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSpec, fmt.Sprintf(format, args...))
}

// withDefaults returns spec with its zero values replaced by the values
// they mean, so a stored rollout says what it does.
func (spec Spec) withDefaults() Spec {
	if spec.WaveTimeout == 0 {
		spec.WaveTimeout = DefaultWaveTimeout
	}
	return spec
}
