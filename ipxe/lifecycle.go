package ipxe

import (
	"context"
	"strings"

	"github.com/rackboot/rackboot/profiles"
)

// Lifecycle tells the per-machine script where a machine is in its install
// lifecycle (the state machine of docs/DESIGN.md): a pending machine boots its
// installer with a fresh install token, an installed one its local disk, a
// failed one nothing. The appliance's registry satisfies it through an
// adapter; tests use a fake.
//
// Boot is called once per GET of /ipxe and may change the machine's state
// (mint a token, count an attempt). It must be safe for concurrent use.
type Lifecycle interface {
	// Boot returns the step for the machine f. host is its entry in the
	// profiles, nil when it has none. An error means the state is
	// unknown; the script then boots nothing.
	Boot(ctx context.Context, f Facts, host *profiles.Host) (Step, error)
}

// Step is the lifecycle's word on what a machine boots.
type Step struct {
	// Kind is one of the Step constants.
	Kind string
	// Token is the install token, with StepInstall: the installer gets it
	// as rackboot.token= on its kernel command line.
	Token string
	// Message says why, with StepFailed and StepHeld; it is shown on the console,
	// reduced to characters that are inert in a script.
	Message string
}

// Steps of the lifecycle.
const (
	// StepDefault: no opinion (an unknown or discovered machine); the
	// profiles' decision stands.
	StepDefault = ""
	// StepInstall: boot the installer with Token.
	StepInstall = "install"
	// StepLocal: boot the installed system from the local disk.
	StepLocal = "local"
	// StepFailed: the install failed for good; boot nothing destructive.
	StepFailed = "failed"
	// StepHeld: the machine may not install now (its version's image is
	// missing or not what the catalog says); boot nothing and ask again
	// later.
	StepHeld = "held"
)

// Follow applies the lifecycle's step to what the profiles decided. An
// installer gains the token; a machine that is installed or failed boots
// its disk or nothing, whatever its profile would install.
func Follow(d Decision, s Step) Decision {
	switch s.Kind {
	case StepInstall:
		if d.Outcome == OutcomeInstaller {
			d.Token = s.Token
		}
	case StepLocal:
		d.Outcome, d.Installer = OutcomeLocal, nil
	case StepFailed:
		d.Outcome, d.Installer, d.Message = OutcomeFailed, nil, s.Message
	case StepHeld:
		if d.Outcome == OutcomeInstaller {
			d.Outcome, d.Installer, d.Message = OutcomeHeld, nil, s.Message
		}
	}
	return d
}

// maxMessage bounds the part of a lifecycle message a console shows.
const maxMessage = 160

// inert reduces a message (an agent's error, a reason typed by an admin)
// to words iPXE prints literally: every byte outside the safe set becomes
// a space, runs of spaces one. Nothing in it can expand a setting, end the
// command or start another.
func inert(msg string) string {
	b := []byte(msg)
	for i, c := range b {
		if !safeByte(c) {
			b[i] = ' '
		}
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > maxMessage {
		s = strings.TrimRight(s[:maxMessage], " ") + " ..."
	}
	if s == "" {
		return "no reason was recorded"
	}
	return s
}

// validToken reports whether t can go on a kernel command line as is: 16
// to 128 ASCII letters and digits. The registry mints 64 hex digits.
func validToken(t string) bool {
	if len(t) < 16 || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
