package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/profiles"
)

// Commands the demo runs on each installed machine, in this order, and
// shows with their output.
const (
	cmdHostname  = "hostname"
	cmdAddresses = "ip -br -4 addr show scope global"
	cmdOSRelease = "grep -E '^(PRETTY_NAME|IMAGE_VERSION)=' /etc/os-release"
	cmdCloudInit = "cloud-init status --long"
	// cmdDF is followed by the mount points of the host's layout.
	cmdDF = "df -h /"
)

// commands are what the demo asks a machine whose profile is h.
func commands(h *profiles.Host) []string {
	df := cmdDF
	for _, p := range h.Layout.Partitions {
		if strings.HasPrefix(p.Mount, "/") {
			df += " " + p.Mount
		}
	}
	return []string{cmdHostname, cmdAddresses, cmdOSRelease, df, cmdCloudInit}
}

// waitCloudInit waits, on the machine, at most limit for cloud-init's
// last stage: `cloud-init status --wait` prints a dot every quarter of a
// second until then, so its output is dropped; cmdCloudInit shows the
// verdict. timeout(1) bounds it on a machine whose cloud-init hangs.
func waitCloudInit(limit time.Duration) string {
	return fmt.Sprintf("timeout %d cloud-init status --wait >/dev/null", max(int(limit.Seconds()), 1))
}

// exchange is one command run over SSH and what came back.
type exchange struct {
	cmd, out string
	err      error // the command failed, or the session did
}

// session is what a machine answered over SSH, command by command.
type session []exchange

// ask runs each command on c and records the answers. It stops at the
// first command the session could not run (the connection is gone); a
// command that ran and failed is recorded and the next one runs.
func ask(c *ssh.Client, cmds []string) session {
	var s session
	for _, cmd := range cmds {
		out, err := lab.Run(c, cmd)
		s = append(s, exchange{cmd: cmd, out: out, err: err})
		var exit *ssh.ExitError
		if err != nil && !errors.As(err, &exit) {
			break
		}
	}
	return s
}

// failed is the first command that failed, nil when none did. A
// cloud-init status other than done is told by check, with the status.
func (s session) failed() error {
	for _, e := range s {
		if e.err != nil && e.cmd != cmdCloudInit {
			return fmt.Errorf("`%s`: %w: %s", e.cmd, e.err, strings.TrimSpace(e.out))
		}
	}
	return nil
}

// answer is the output of cmd, "" when it was not run.
func (s session) answer(cmd string) string {
	for _, e := range s {
		if e.cmd == cmd {
			return e.out
		}
	}
	return ""
}

// hostname is what `hostname` said.
func (s session) hostname() string { return strings.TrimSpace(s.answer(cmdHostname)) }

// addresses are the IPv4 addresses with prefix length that `ip -br`
// listed, on every interface.
func (s session) addresses() []string {
	var out []string
	for _, line := range strings.Split(s.answer(cmdAddresses), "\n") {
		// "boot0   UP   192.168.77.71/24"
		if f := strings.Fields(line); len(f) > 2 {
			out = append(out, f[2:]...)
		}
	}
	return out
}

var imageVersionRE = regexp.MustCompile(`(?m)^IMAGE_VERSION="?([^"\n]*)"?$`)

// version is the IMAGE_VERSION of the machine's os-release: the image it
// runs.
func (s session) version() string {
	if m := imageVersionRE.FindStringSubmatch(s.answer(cmdOSRelease)); m != nil {
		return m[1]
	}
	return ""
}

var cloudInitRE = regexp.MustCompile(`(?m)^status: (\S+)$`)

// cloudInit is the status `cloud-init status --long` reported: done,
// error, running, disabled.
func (s session) cloudInit() string {
	if m := cloudInitRE.FindStringSubmatch(s.answer(cmdCloudInit)); m != nil {
		return m[1]
	}
	return ""
}

// mounts are the mount points of the file systems df listed.
func (s session) mounts() []string {
	for _, e := range s {
		if !strings.HasPrefix(e.cmd, cmdDF) {
			continue
		}
		var out []string
		lines := strings.Split(strings.TrimSpace(e.out), "\n")
		for _, line := range lines[1:] { // after the header
			if f := strings.Fields(line); len(f) >= 6 {
				out = append(out, f[len(f)-1])
			}
		}
		return out
	}
	return nil
}
