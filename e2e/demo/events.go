package main

import (
	"fmt"
	"path"
	"strings"

	"github.com/rackboot/rackboot/e2e/lab"
)

// Messages of rackboot's log the demo follows (dhcp, tftp, ipxe and
// artifacts packages).
const (
	msgAnswered   = "answered"
	msgTFTPDone   = "tftp transfer done"
	msgBootScript = "boot script served"
	msgScript     = "script served"
	msgArtifact   = "artifact request"
	msgUnknown    = "unknown host not answered"
)

// describe turns one of rackboot's log entries into a progress line, or
// reports that it is not one a person watching needs.
func describe(e lab.LogEntry) (string, bool) {
	switch {
	case e.Msg == msgAnswered:
		port := ""
		if strings.HasSuffix(e.Str("dst"), ":4011") {
			port = " on the PXE port 4011"
		}
		return fmt.Sprintf("rackboot: proxyDHCP %s%s, boot file %s", e.Str("kind"), port, e.Str("path")), true
	case e.Msg == msgTFTPDone:
		return fmt.Sprintf("rackboot: TFTP sent %s (%s)", e.Str("path"), size(e, "bytes")), true
	case e.Msg == msgBootScript:
		return "rackboot: HTTP sent /boot.ipxe (iPXE asks for its own script next)", true
	case e.Msg == msgScript:
		return fmt.Sprintf("rackboot: HTTP sent the iPXE script of host %s (%s)", e.Str("host"), e.Str("outcome")), true
	case e.Msg == msgArtifact && served(e):
		return fmt.Sprintf("rackboot: HTTP sent %s (%s)", e.Str("path"), size(e, "bytes")), true
	case strings.HasPrefix(e.Msg, msgUnknown):
		return "rackboot: " + e.Msg, true
	case e.Level == "WARN" || e.Level == "ERROR":
		return problem(e), true
	}
	return "", false
}

// problem describes a warning or error of rackboot's about a machine.
func problem(e lab.LogEntry) string {
	s := fmt.Sprintf("rackboot %s: %s", e.Level, e.Msg)
	for _, key := range []string{"path", "status", "err"} {
		if v := e.Str(key); v != "" {
			s += fmt.Sprintf(" %s=%s", key, v)
		}
	}
	return s
}

// served reports an artifact request answered with (part of) the file.
func served(e lab.LogEntry) bool {
	st := e.Str("status")
	return st == "200" || st == "206"
}

// size formats a byte count attribute for people. JSON numbers arrive as
// float64.
func size(e lab.LogEntry, key string) string {
	n, ok := e.Attrs[key].(float64)
	switch {
	case !ok:
		return "? bytes"
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f bytes", n)
}

// Console lines that mark the steps of a network boot.
const (
	consoleEDK2PXE = `Start PXE over IPv4` // OVMF's own PXE client
	consoleIPXE    = `iPXE initialising`   // iPXE, from the NIC's ROM or from TFTP
	consoleScript  = `^rackboot: booting`  // printed by rackboot's per-machine script
	consoleLinux   = `Linux version|EFI stub:`
)

// consoleMilestone is a line on a machine's serial console worth showing
// as it appears.
type consoleMilestone struct {
	pattern string // regular expression over console lines
	text    string // the progress line; the console line itself when ""
}

// consoleMilestones are what the firmware, iPXE and the booted system print
// on the serial console, in boot order. The marker is shown apart, with
// its verdict.
func consoleMilestones() []consoleMilestone {
	return []consoleMilestone{
		{consoleEDK2PXE, "console: EDK2's PXE client starts (UEFI firmware)"},
		{consoleIPXE, "console: iPXE starts"},
		{consoleScript, ""},
		// Only without "quiet" on the kernel command line.
		{consoleLinux, "console: Linux kernel starts"},
		{lab.InitStart, "console: kernel up, initramfs /init runs"},
	}
}

// timelineMilestones are the final table's columns, in boot order: moments
// from rackboot's log and from the machine's console. identify maps a log
// entry to a MAC (see progress.identify): TFTP lines may carry only the
// client's address.
func timelineMilestones(m *machine, identify func(lab.LogEntry) string) []lab.Milestone {
	mine := func(e lab.LogEntry) bool { return sameMAC(identify(e), m.mac.String()) }
	kernel := path.Base(m.host.Installer.Kernel)
	return []lab.Milestone{
		{Name: "dhcp", Server: func(e lab.LogEntry) bool { return e.Msg == msgAnswered && mine(e) }},
		{Name: "tftp", Server: func(e lab.LogEntry) bool {
			return e.Msg == msgTFTPDone && path.Base(e.Str("path")) == "ipxe.efi" && mine(e)
		}},
		{Name: "ipxe", Serial: consoleIPXE},
		{Name: "script", Server: func(e lab.LogEntry) bool { return e.Msg == msgScript && mine(e) }},
		{Name: "kernel", Server: func(e lab.LogEntry) bool {
			return e.Msg == msgArtifact && served(e) && path.Base(e.Str("path")) == kernel && mine(e)
		}},
		{Name: "init", Serial: lab.InitStart},
		{Name: "marker", Serial: lab.Marker + " "},
	}
}
