package ipxe

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/profiles"
)

// ArtifactsPath is where the appliance serves its artifacts directory;
// kernel and initrd paths of the profiles are relative to it.
const ArtifactsPath = "/artifacts/"

// initrdName is the name iPXE gives the initrd image and the kernel's
// initrd= argument names. Under UEFI the kernel's EFI stub loads its initrd
// by that name from the file system iPXE exposes, so the two must match
// (docs/DESIGN.md, fact 15); BIOS kernels ignore the argument. Kernels before 5.8 and iPXE
// builds before 2023 have no LoadFile2 initrd protocol to fall back on.
const initrdName = "initrd.img"

// Pauses before a script gives up, so an operator at the console can read
// why before the firmware moves on and the screen is gone.
const (
	noticePause  = "5"
	failurePause = "10"
	// heldPause is how long a held machine waits before it asks again:
	// once the image is fixed it installs at its next ask, unattended.
	heldPause = "30"
)

// caInitrdName is the name iPXE gives the CA archive (Appliance.CA), for
// the kernel's second initrd= argument (see initrdName).
const caInitrdName = "rackboot-ca.cpio.gz"

// Appliance is where a script points the machine.
type Appliance struct {
	// Base is the plain HTTP URL iPXE reaches the appliance at, such as
	// "http://192.0.2.1:8080": it prefixes artifact URLs. Plain because
	// Debian's iPXE has no HTTPS (docs/DESIGN.md, fact 20).
	Base string
	// API is the agent API's origin, handed to the installer as
	// rackboot.server=, such as "https://192.0.2.1:8443". Empty means
	// Base.
	API string
	// Peers are the agent API origins of the other appliances sharing
	// this one's registry, such as "https://192.0.2.2:8443": the
	// installer gets them after API in rackboot.server=, a comma-separated
	// list, and goes on with the next when the one it talks to dies
	// (issue 18: the install token is valid at every appliance of the
	// fleet). One equal to API is left out. Nil: none.
	Peers []string
	// CA is the path under Base of a newc archive holding the CA the
	// agent verifies API against (/etc/rackboot/ca.pem), such as
	// "/nbp/rackboot-ca.cpio.gz". An installer with an initrd loads it as a
	// second one, which the kernel unpacks over the first: a replaced
	// certificate needs no initrd rebuild. Empty loads none.
	CA string
}

// Render returns the per-machine script for the machine f, booting what d
// decided, pointing it at a.
//
// Every value that reaches the script is validated first and the finished
// script is checked (see checkScript), so a hostile profile value yields an
// error, never a script. The script's exits return a failure status so the
// firmware tries its next boot device (a success would make UEFI's boot
// manager stop and show its menu, UEFI 2.10 section 3.1.1).
func Render(a Appliance, f Facts, d Decision) (string, error) {
	if err := f.check(); err != nil {
		return "", fmt.Errorf("ipxe: %w", err)
	}
	if err := a.check(); err != nil {
		return "", fmt.Errorf("ipxe: %w", err)
	}
	who, err := describe(f, d.Host)
	if err != nil {
		return "", fmt.Errorf("ipxe: %w", err)
	}
	mac := f.MAC.String()
	var lines []string
	switch d.Outcome {
	case OutcomeInstaller, OutcomeDiscovery:
		if d.Installer == nil {
			return "", fmt.Errorf("ipxe: outcome %s without an installer", d.Outcome)
		}
		intro := "rackboot: booting the installer of " + who
		if d.Outcome == OutcomeDiscovery {
			intro = "rackboot: " + who + " is not in the profiles, discovery is on: booting the default installer"
		}
		if d.Token != "" && !validToken(d.Token) {
			return "", fmt.Errorf("ipxe: install token of %s: want 16 to 128 letters and digits", mac)
		}
		boot, err := installerLines(a, f, d.Installer, d.Token)
		if err != nil {
			return "", fmt.Errorf("ipxe: installer of %s: %w", mac, err)
		}
		lines = append([]string{"echo " + intro}, boot...)
	case OutcomeLocal:
		lines = localLines(who, f)
	case OutcomeFailed:
		lines = []string{
			"echo rackboot: " + who + " is not installed: its install failed and will not be retried",
			"echo rackboot: " + inert(d.Message),
			"echo rackboot: once the cause is fixed, run: rackboot reinstall " + mac,
		}
		lines = append(lines, giveUp(failurePause)...)
	case OutcomeHeld:
		lines = []string{
			"echo rackboot: " + who + " is held: nothing is installed while its version cannot be",
			"echo rackboot: " + inert(d.Message),
			"echo rackboot: rackboot hosts shows why, asking again in " + heldPause + " seconds",
			"sleep " + heldPause,
			"chain --replace " + a.Base + "/boot.ipxe || goto held_failed",
			":held_failed",
			"echo rackboot: " + a.Base + " did not answer, trying the next boot device",
			"exit 1",
		}
	case OutcomeStateError:
		lines = []string{
			"echo rackboot: cannot read the install state of " + who + ", so nothing is installed now",
			"echo rackboot: the rackboot log says why",
		}
		lines = append(lines, giveUp(failurePause)...)
	case OutcomeUnverified:
		lines = []string{
			"echo rackboot: this request for " + who + " did not come from the link-layer address of that machine, so nothing is booted",
			"echo rackboot: the rackboot log says which address it came from",
		}
		lines = append(lines, giveUp(failurePause)...)
	case OutcomeUnknown:
		lines = []string{
			"echo rackboot: " + who + " is unknown to rackboot, nothing to boot",
			"echo rackboot: add this MAC address to the profiles to install this machine",
		}
		lines = append(lines, giveUp(noticePause)...)
	case OutcomeNoInstaller:
		if d.Host != nil {
			lines = []string{
				"echo rackboot: " + who + " has no installer and the profiles define no default installer, nothing to boot",
				"echo rackboot: give the host an installer or set defaults.installer in the profiles",
			}
		} else {
			lines = []string{
				"echo rackboot: " + who + " is unknown to rackboot and discovery has no default installer to boot",
				"echo rackboot: set defaults.installer in the profiles or add this MAC address with an installer",
			}
		}
		lines = append(lines, giveUp(noticePause)...)
	default:
		return "", fmt.Errorf("ipxe: cannot render outcome %.*q", maxParam, d.Outcome)
	}
	s := "#!ipxe\n" + strings.Join(lines, "\n") + "\n"
	if err := checkScript(s); err != nil {
		return "", fmt.Errorf("ipxe: rendered script for %s: %w", mac, err)
	}
	return s, nil
}

// installerLines loads and boots in, jumping to a message naming the step
// that failed. iPXE prints its own error (e.g. "Connection timed out") before
// the jump.
func installerLines(a Appliance, f Facts, in *profiles.Installer, token string) ([]string, error) {
	kernel, err := location(a.Base, in.Kernel, f)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	args, err := cmdline(in.Cmdline)
	if err != nil {
		return nil, fmt.Errorf("cmdline: %w", err)
	}
	var initrd string
	if in.Initrd != "" {
		if initrd, err = location(a.Base, in.Initrd, f); err != nil {
			return nil, fmt.Errorf("initrd: %w", err)
		}
	}
	// The CA archive only makes sense beside an initramfs it extends.
	var ca string
	if initrd != "" && a.CA != "" {
		ca = a.Base + a.CA
	}

	k := []string{"kernel", kernel}
	if initrd != "" {
		k = append(k, "initrd="+initrdName)
	}
	if ca != "" {
		k = append(k, "initrd="+caInitrdName)
	}
	// rackboot's own arguments go before the profile's: everything after a
	// "--" in the profile's cmdline is handed to init, not to the kernel.
	k = append(k, agentapi.ParamServer+"="+strings.Join(a.servers(), ","), agentapi.ParamMAC+"="+f.MAC.String())
	if token != "" {
		k = append(k, agentapi.ParamToken+"="+token)
	}
	k = append(k, args...)
	k = append(k, "||", "goto", "kernel_failed")
	lines := []string{strings.Join(k, " ")}
	if initrd != "" {
		lines = append(lines, "initrd --name "+initrdName+" "+initrd+" || goto initrd_failed")
	}
	if ca != "" {
		lines = append(lines, "initrd --name "+caInitrdName+" "+ca+" || goto ca_failed")
	}
	lines = append(lines,
		"boot || goto boot_failed",
		":kernel_failed",
		"echo rackboot: could not load the kernel "+kernel,
		"goto failed",
	)
	if initrd != "" {
		lines = append(lines,
			":initrd_failed",
			"echo rackboot: could not load the initrd "+initrd,
			"goto failed",
		)
	}
	if ca != "" {
		lines = append(lines,
			":ca_failed",
			"echo rackboot: could not load the CA of the appliance "+ca,
			"goto failed",
		)
	}
	lines = append(lines,
		":boot_failed",
		"echo rackboot: the installer kernel did not start",
		":failed",
	)
	return append(lines, giveUp(failurePause)...), nil
}

// localLines boot the installed system on the machine's own disk, the way
// each firmware really does it.
//
// BIOS: "sanboot --drive 0x80" boots the first hard disk through INT 13h,
// as the BIOS would (ipxe.org/cmd/sanboot); --no-describe keeps iPXE from
// publishing the disk as a SAN boot device (iBFT) to the OS. "exit" alone
// is unreliable there: many BIOSes halt instead of trying the next device.
//
// UEFI: "exit 1" returns a failure to the boot manager, which moves on to
// the next Boot#### entry (UEFI 2.10 section 3.1.1): the installed system,
// which the agent put in BootOrder. sanboot cannot reach a local disk under
// UEFI: iPXE's drive numbers name only its own SAN devices.
//
// Without a reported platform both are tried, BIOS first: under UEFI the
// sanboot fails harmlessly and the exit follows.
func localLines(who string, f Facts) []string {
	lines := []string{"echo rackboot: " + who + " is installed: booting from its local disk"}
	if f.Platform != "efi" {
		lines = append(lines,
			"sanboot --no-describe --drive 0x80 || goto local_failed",
			":local_failed",
			"echo rackboot: the first local disk did not boot, trying the next boot device",
		)
	}
	return append(lines, "exit 1")
}

// giveUp ends a script after a pause, with a failure status so the firmware
// moves on to its next boot device.
func giveUp(pause string) []string {
	return []string{
		"echo rackboot: trying the next boot device in " + pause + " seconds",
		"sleep " + pause,
		"exit 1",
	}
}

// describe names the machine for the console: hostname (when the profiles
// give one), MAC, and the arch and platform iPXE reported.
func describe(f Facts, h *profiles.Host) (string, error) {
	who := f.MAC.String()
	if h != nil && h.Hostname != "" {
		if !validHostname(h.Hostname) {
			return "", fmt.Errorf("hostname %q of %s: not an RFC 1123 host name", h.Hostname, who)
		}
		who = h.Hostname + " " + who
	}
	var env []string
	for _, v := range []string{f.Arch, f.Platform} {
		if v != "" {
			env = append(env, v)
		}
	}
	if len(env) > 0 {
		who += " (" + strings.Join(env, " ") + ")"
	}
	return who, nil
}

// cmdline splits the profile's kernel arguments at spaces and checks each.
// Only spaces separate arguments: a tab or newline is an unsafe character,
// not a separator, so it cannot hide.
func cmdline(s string) ([]string, error) {
	var args []string
	for _, a := range strings.Split(s, " ") {
		if a == "" {
			continue
		}
		if !safeWord(a) {
			return nil, fmt.Errorf("argument %q: only letters, digits and %s are allowed", a, safePunct)
		}
		// rackboot.* arguments carry the server and the machine's identity
		// to the installer; a profile must not override them. It may say
		// what the installer does when done, as profiles validation allows.
		if strings.HasPrefix(a, "rackboot.") && !agentapi.AfterArg(a) {
			return nil, fmt.Errorf("argument %q: rackboot.* arguments are set by rackboot (%s=%s|%s excepted)",
				a, agentapi.ParamAfter, agentapi.AfterReboot, agentapi.AfterPoweroff)
		}
		args = append(args, a)
	}
	return args, nil
}

// refusal is served instead of a script Render refused to produce. It
// names no profile value: the reason is in the appliance's log.
func refusal(f Facts) string {
	lines := []string{
		"#!ipxe",
		"echo rackboot: refusing to boot " + f.MAC.String() + ": its profile holds a value that is unsafe in an iPXE script",
		"echo rackboot: the rackboot log says which",
	}
	lines = append(lines, giveUp(failurePause)...)
	return strings.Join(lines, "\n") + "\n"
}

// api is the URL handed to the installer as rackboot.server=.
func (a Appliance) api() string {
	if a.API == "" {
		return a.Base
	}
	return a.API
}

// servers are the URLs handed to the installer as rackboot.server=: API,
// then the peers, each once.
func (a Appliance) servers() []string {
	s := []string{a.api()}
	for _, p := range a.Peers {
		if !slices.Contains(s, p) {
			s = append(s, p)
		}
	}
	return s
}

// check validates the URLs and the CA path before they reach a script.
func (a Appliance) check() error {
	if err := checkBase(a.Base); err != nil {
		return fmt.Errorf("server URL: %w", err)
	}
	if a.API != "" {
		if err := checkBase(a.API); err != nil {
			return fmt.Errorf("API URL: %w", err)
		}
	}
	for _, p := range a.Peers {
		if err := checkBase(p); err != nil {
			return fmt.Errorf("peer API URL: %w", err)
		}
	}
	if a.CA != "" && (!safeWord(a.CA) || !strings.HasPrefix(a.CA, "/") || path.Clean(a.CA) != a.CA || strings.ContainsAny(a.CA, "?%")) {
		return fmt.Errorf("CA archive path %q: want a clean absolute path", a.CA)
	}
	return nil
}
