package osimage

import (
	"strings"
)

// Marker lines the demo OS prints on its serial console, each at the start
// of a line of its own:
//
//	RACKBOOT_DEMO_INIT uptime=1.52
//	RACKBOOT_DEMO_OS version=demo-1.0 fw=efi kernel=6.1.0-56-amd64 uptime=2.10
//	RACKBOOT_DEMO_HOSTNAME web-1
//	RACKBOOT_DEMO_SSHKEY ssh-ed25519 AAAAC3NzaC1lZDI1NTE5...
//	RACKBOOT_DEMO_FORMATTED /dev/vda4
//	RACKBOOT_DEMO_DATA created by demo-1.0 on web-1
//	RACKBOOT_DEMO_DONE uptime=2.71
//
// INIT comes from the initramfs, the others from the root file system.
// FORMATTED appears only on the boot that formatted the data partition.
// WARN lines say what was missing (no config drive, no data partition);
// a FAIL line says why the OS gave up, and it powers off right after.
const (
	MarkerInit      = "RACKBOOT_DEMO_INIT"
	MarkerOS        = "RACKBOOT_DEMO_OS"
	MarkerHostname  = "RACKBOOT_DEMO_HOSTNAME"
	MarkerSSHKey    = "RACKBOOT_DEMO_SSHKEY"
	MarkerFormatted = "RACKBOOT_DEMO_FORMATTED"
	MarkerData      = "RACKBOOT_DEMO_DATA"
	MarkerDone      = "RACKBOOT_DEMO_DONE"
	MarkerWarn      = "RACKBOOT_DEMO_WARN"
	MarkerFail      = "RACKBOOT_DEMO_FAIL"
)

// Report is what a boot of the demo OS said on its console.
type Report struct {
	Init      bool   // the initramfs ran
	Version   string // from the root file system's os-release
	Firmware  string // "efi" or "bios", as the kernel saw it
	Kernel    string // uname -r
	Hostname  string // local-hostname of the config drive's meta-data, "none" if absent
	SSHKey    string // SSHKeySummary of the first key, "none" if absent
	Formatted string // the data partition's device, when this boot formatted it
	Data      string // the first line of hello.txt on the data partition
	Warnings  []string
	Fail      string // why the OS gave up
	Done      bool   // it reached the end and is powering off
}

// ParseConsole reads a serial console log. Lines that are not markers
// (firmware, kernel, boot loader) are ignored, and so is anything before a
// marker on its line, such as a kernel message the marker interrupted.
func ParseConsole(log string) Report {
	var r Report
	for _, line := range strings.Split(log, "\n") {
		r.Add(line)
	}
	return r
}

// Add takes one console line into the report.
func (r *Report) Add(line string) {
	line = strings.TrimRight(line, "\r")
	i := strings.Index(line, "RACKBOOT_DEMO_")
	if i < 0 {
		return
	}
	marker, rest, _ := strings.Cut(line[i:], " ")
	rest = strings.TrimSpace(rest)
	switch marker {
	case MarkerInit:
		r.Init = true
	case MarkerOS:
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "version":
				r.Version = v
			case "fw":
				r.Firmware = v
			case "kernel":
				r.Kernel = v
			}
		}
	case MarkerHostname:
		r.Hostname = rest
	case MarkerSSHKey:
		r.SSHKey = rest
	case MarkerFormatted:
		r.Formatted = rest
	case MarkerData:
		r.Data = rest
	case MarkerWarn:
		r.Warnings = append(r.Warnings, rest)
	case MarkerFail:
		r.Fail = rest
	case MarkerDone:
		r.Done = true
	}
}

// SSHKeySummary is what the demo OS prints of an authorized_keys line:
// the key type and the first 20 characters of the key, followed by "..."
// when there is more.
func SSHKeySummary(key string) string {
	f := strings.Fields(key)
	if len(f) < 2 {
		return "none"
	}
	body := f[1]
	if len(body) > 20 {
		body = body[:20] + "..."
	}
	return f[0] + " " + body
}

// DataLine is the content of hello.txt that version writes on the data
// partition of the machine named hostname (empty: unknown), and so what
// Report.Data holds on every later boot.
func DataLine(version, hostname string) string {
	if hostname == "" {
		hostname = "unknown"
	}
	return "created by " + version + " on " + hostname
}
