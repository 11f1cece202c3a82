package ipxe

import (
	"net"

	"github.com/rackboot/rackboot/profiles"
)

// Hosts is what the per-machine script needs to know about the fleet.
// *profiles.Set satisfies it. Implementations must be safe for concurrent
// use: the Handler calls them from every request's goroutine.
type Hosts interface {
	// Lookup returns the host with the given MAC address.
	Lookup(mac net.HardwareAddr) (*profiles.Host, bool)
	// DefaultInstaller returns the fleet-wide installer, or nil.
	DefaultInstaller() *profiles.Installer
}

// Outcomes of a script request, as logged and passed to Handler.OnScript.
const (
	// OutcomeInstaller: a known host boots its installer.
	OutcomeInstaller = "installer"
	// OutcomeDiscovery: an unknown host boots the default installer because
	// discovery is on.
	OutcomeDiscovery = "discovery"
	// OutcomeUnknown: an unknown host, discovery off; the script exits.
	OutcomeUnknown = "unknown"
	// OutcomeNoInstaller: nothing to boot (a host without an installer and
	// no default, or discovery on without a default); the script exits.
	OutcomeNoInstaller = "no-installer"
	// OutcomeRefused: a value that would reach the script was unsafe; the
	// script says so and exits. Only the Handler produces it.
	OutcomeRefused = "refused"
	// OutcomeLocal: an installed machine boots its local disk (Lifecycle).
	OutcomeLocal = "local"
	// OutcomeFailed: the machine's install failed for good; the script
	// shows why and exits (Lifecycle).
	OutcomeFailed = "failed"
	// OutcomeHeld: the machine's version cannot be installed now (its
	// image is missing or not what the catalog says); the script shows
	// why, waits and asks again (Lifecycle).
	OutcomeHeld = "held"
	// OutcomeStateError: the Lifecycle could not tell the machine's state;
	// the script boots nothing. Only the Handler produces it.
	OutcomeStateError = "state-error"
	// OutcomeUnverified: the request did not come from the machine it
	// names (Handler.Verify); the script boots nothing. Only the Handler
	// produces it.
	OutcomeUnverified = "unverified"
)

// Decision is what a machine boots.
type Decision struct {
	// Outcome is one of the Outcome constants.
	Outcome string
	// Host is the machine's entry, nil when its MAC is unknown.
	Host *profiles.Host
	// Installer is what it boots, nil when it boots nothing.
	Installer *profiles.Installer
	// Token is the install token handed to the installer, or "" (no
	// Lifecycle, or discovery).
	Token string
	// Message says why, with OutcomeFailed and OutcomeHeld.
	Message string
}

// Decide looks the machine up and chooses what it boots. A known host boots
// its own installer, else the default one; an unknown host boots the
// default installer only when discovery is on. A nil hosts knows no host.
func Decide(f Facts, hosts Hosts, discovery bool) Decision {
	var def *profiles.Installer
	var h *profiles.Host
	var known bool
	if hosts != nil {
		h, known = hosts.Lookup(f.MAC)
		def = hosts.DefaultInstaller()
	}
	switch {
	case known && h != nil:
		in := h.Installer
		if in == nil {
			in = def
		}
		if in == nil {
			return Decision{Outcome: OutcomeNoInstaller, Host: h}
		}
		return Decision{Outcome: OutcomeInstaller, Host: h, Installer: in}
	case !discovery:
		return Decision{Outcome: OutcomeUnknown}
	case def == nil:
		return Decision{Outcome: OutcomeNoInstaller}
	default:
		return Decision{Outcome: OutcomeDiscovery, Installer: def}
	}
}
