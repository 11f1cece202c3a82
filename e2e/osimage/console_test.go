package osimage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseConsole(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want Report
	}{
		{
			name: "first boot",
			log: "BdsDxe: starting Boot0002 \"UEFI Misc Device\"\r\n\r\n" +
				"RACKBOOT_DEMO_INIT uptime=2.34\r\n" +
				"RACKBOOT_DEMO_OS version=demo-1.0 fw=efi kernel=6.1.0-56-amd64 uptime=3.77\r\n" +
				"RACKBOOT_DEMO_HOSTNAME web-1\r\n" +
				"RACKBOOT_DEMO_SSHKEY ssh-ed25519 AAAAC3NzaC1lZDI1NTE5...\r\n" +
				"RACKBOOT_DEMO_FORMATTED /dev/vda4\r\n" +
				"RACKBOOT_DEMO_DATA created by demo-1.0 on web-1\r\n" +
				"RACKBOOT_DEMO_DONE uptime=3.98\r\n" +
				"[    4.026207] reboot: Power down\r\n",
			want: Report{Init: true, Version: "demo-1.0", Firmware: "efi", Kernel: "6.1.0-56-amd64", Hostname: "web-1",
				SSHKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5...", Formatted: "/dev/vda4", Data: "created by demo-1.0 on web-1", Done: true},
		},
		{
			name: "nothing appended",
			log: "RACKBOOT_DEMO_INIT uptime=1.94\n" +
				"RACKBOOT_DEMO_OS version=demo-1.1 fw=bios kernel=6.1.0-56-amd64 uptime=3.18\n" +
				"RACKBOOT_DEMO_WARN no CIDATA config drive\n" +
				"RACKBOOT_DEMO_WARN no partition named data\n" +
				"RACKBOOT_DEMO_DONE uptime=3.26\n",
			want: Report{Init: true, Version: "demo-1.1", Firmware: "bios", Kernel: "6.1.0-56-amd64",
				Warnings: []string{"no CIDATA config drive", "no partition named data"}, Done: true},
		},
		{
			name: "failure",
			log:  "RACKBOOT_DEMO_INIT uptime=1.94\nRACKBOOT_DEMO_FAIL no partition named root-x86-64\n",
			want: Report{Init: true, Fail: "no partition named root-x86-64"},
		},
		{
			name: "marker after a kernel message on the same line",
			log:  "[    3.1] virtio_blk virtio1: [vda] 1048576 512-byte logical blocksRACKBOOT_DEMO_HOSTNAME db-2\n",
			want: Report{Hostname: "db-2"},
		},
		{
			name: "noise only",
			log:  "SeaBIOS (version 1.16.2)\nBooting from Hard Disk...\nRACKBOOT_DEMO_UNKNOWN x\n",
			want: Report{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseConsole(tt.log)); diff != "" {
				t.Errorf("ParseConsole() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseConsole(f *testing.F) {
	f.Add("RACKBOOT_DEMO_OS version=demo-1.0 fw=efi kernel=6.1.0 uptime=3.77\nRACKBOOT_DEMO_DONE\n")
	f.Add("RACKBOOT_DEMO_OS =x version fw==\r\nRACKBOOT_DEMO_WARN\n\x00RACKBOOT_DEMO_")
	f.Fuzz(func(t *testing.T, log string) {
		r := ParseConsole(log)
		if r.Done && !strings.Contains(log, MarkerDone) {
			t.Errorf("Done without %s in %q", MarkerDone, log)
		}
		for _, s := range []string{r.Version, r.Firmware, r.Kernel, r.Hostname, r.SSHKey, r.Data, r.Fail} {
			if strings.ContainsAny(s, "\n") {
				t.Errorf("field %q holds a line break", s)
			}
		}
	})
}

func TestSSHKeySummary(t *testing.T) {
	tests := []struct{ key, want string }{
		{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2 ops@example", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5..."},
		{"ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB", "ssh-rsa AAAAB3NzaC1yc2EAAAAD..."},
		{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"},
		{"ssh-ed25519 short", "ssh-ed25519 short"},
		{"  ecdsa-sha2-nistp256\tAAAAE2VjZHNhLXNoYTItbmlzdHA  ", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTIt..."},
		{"ssh-ed25519", "none"},
		{"", "none"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := SSHKeySummary(tt.key); got != tt.want {
				t.Errorf("SSHKeySummary(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestDataLine(t *testing.T) {
	if got, want := DataLine("demo-1.0", "web-1"), "created by demo-1.0 on web-1"; got != want {
		t.Errorf("DataLine() = %q, want %q", got, want)
	}
	if got, want := DataLine("demo-1.1", ""), "created by demo-1.1 on unknown"; got != want {
		t.Errorf("DataLine() = %q, want %q", got, want)
	}
}
