//go:build e2e

package e2e

import (
	"net"
	"net/netip"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// markerTimeout bounds one boot from power-on to the marker. Measured
// under TCG on two cores: BIOS ~10 s, UEFI through EDK2's PXE ~21 s.
const markerTimeout = 240 * time.Second

// TestBoot boots one machine per firmware path against rackboot and checks
// both what the machine printed and what rackboot logged for it.
func TestBoot(t *testing.T) {
	ctx := testContext(t)
	tb := newTestbed(t, ctx)
	machines := []struct {
		name string
		fw   lab.Firmware
		mac  string
		// what rackboot's log must show, besides the script and the
		// artifacts every machine fetches
		want func(mac string, ip netip.Addr) []expectation
	}{
		{
			// SeaBIOS has no network stack; QEMU's NIC ROM is iPXE, so
			// the first DHCP exchange already comes from iPXE.
			name: "bios", fw: lab.BIOS, mac: biosMAC,
			want: func(mac string, _ netip.Addr) []expectation {
				return []expectation{answeredWith(mac, "/boot.ipxe")}
			},
		},
		{
			// OVMF without NIC ROM: EDK2's own PXE client gets snponly.efi
			// (the proxy offer, TFTP), then iPXE asks for the script.
			name: "uefi", fw: lab.UEFI, mac: uefiMAC,
			want: func(mac string, ip netip.Addr) []expectation {
				return []expectation{
					answeredWith(mac, "snponly.efi"),
					tftpDone("snponly.efi", mac, ip),
					answeredWith(mac, "/boot.ipxe"),
				}
			},
		},
	}
	var timelines []lab.Timeline
	for _, m := range machines {
		t.Run(m.name, func(t *testing.T) {
			vm := tb.startVM(t, ctx, m.name, m.fw, m.mac)
			line, err := vm.WaitFor(ctx, lab.Marker+" ", markerTimeout)
			if err != nil {
				t.Fatalf("%v\nlast console lines (%s):\n%s\nlast rackboot log lines:\n%s",
					err, vm.SerialLog(), vm.Tail(30), readTail(tb.serverLog, 30))
			}
			t.Logf("%s", line)
			fields := markerFields(line.Text)
			for _, key := range []string{"mac", "cmdline_mac"} {
				if got := fields[key]; !sameMAC(got, m.mac) {
					t.Errorf("marker %s=%q, want %s", key, got, m.mac)
				}
			}
			if want := map[lab.Firmware]string{lab.BIOS: "bios", lab.UEFI: "efi"}[m.fw]; fields["fw"] != want {
				t.Errorf("marker fw=%q, want %q", fields["fw"], want)
			}
			select { // the initramfs powers off; QEMU ends with it
			case <-vm.Done():
			case <-time.After(30 * time.Second):
				t.Logf("%s still running 30 s after its marker", m.name)
			}

			ip := tb.lease(t, m.mac)
			entries := since(tb.entries(t), vm.Started())
			want := append(m.want(m.mac, ip),
				scriptServed(m.mac),
				artifactServed(lab.KernelName, m.mac),
				artifactServed(lab.InitrdName, m.mac))
			for _, x := range want {
				if !logged(entries, x.match) {
					t.Errorf("rackboot logged no %s", x.name)
				}
			}
			if t.Failed() {
				t.Logf("rackboot log since power-on:\n%s", raw(entries))
			}

			tl, err := lab.NewTimeline(vm, entries, milestones(m.mac, ip))
			if err != nil {
				t.Fatal(err)
			}
			timelines = append(timelines, tl)
		})
	}
	t.Logf("seconds from power-on (rackboot log and serial console):\n%s", lab.FormatTimelines(timelines))
}

// TestUnknownMAC boots a machine missing from the profiles. rackboot must
// see it and stay silent: no DHCP answer, so no boot.
func TestUnknownMAC(t *testing.T) {
	ctx := testContext(t)
	tb := newTestbed(t, ctx)
	vm := tb.startVM(t, ctx, "unknown", lab.BIOS, unknownMAC)
	line, err := vm.WaitFor(ctx, lab.Marker, 45*time.Second)
	switch {
	case err == nil:
		t.Fatalf("the unknown machine booted: %s", line)
	case ctx.Err() != nil:
		t.Fatal(err)
	}
	vm.Kill()
	// The machine got an address from the site's server: its DHCP reached
	// the segment, so rackboot's silence was a decision, not a dead link.
	ip := tb.lease(t, unknownMAC)
	entries := since(tb.entries(t), vm.Started())
	if !logged(entries, unknownIgnored(unknownMAC).match) {
		t.Errorf("rackboot logged no %s", unknownIgnored(unknownMAC).name)
	}
	for _, x := range []expectation{answeredWith(unknownMAC, ""), scriptServed(unknownMAC)} {
		for _, e := range entries {
			if x.match(e) {
				t.Errorf("rackboot logged a %s: %s", x.name, e.Raw)
			}
		}
	}
	if t.Failed() {
		t.Logf("rackboot log since power-on:\n%s\nconsole:\n%s", raw(entries), vm.Tail(30))
	}
	t.Logf("unknown machine %s (site lease %s) stayed unanswered for 45 s", unknownMAC, ip)
}

// milestones are the moments of a boot the timeline shows, for the machine
// with this MAC and site-DHCP address.
func milestones(mac string, ip netip.Addr) []lab.Milestone {
	return []lab.Milestone{
		{Name: "dhcp", Server: answeredWith(mac, "").match},
		{Name: "tftp", Server: tftpDone("snponly.efi", mac, ip).match},
		{Name: "ipxe", Serial: "iPXE initialising"},
		{Name: "script", Server: scriptServed(mac).match},
		{Name: "kernel", Server: artifactServed(lab.KernelName, mac).match},
		{Name: "init", Serial: lab.InitStart},
		{Name: "marker", Serial: lab.Marker},
	}
}

// expectation is a line rackboot's log should (or should not) contain.
type expectation struct {
	name  string
	match func(lab.LogEntry) bool
}

// answeredWith: a proxyDHCP answer to mac whose boot file ends in suffix.
func answeredWith(mac, suffix string) expectation {
	return expectation{
		name: "DHCP answer to " + mac + " with boot file *" + suffix,
		match: func(e lab.LogEntry) bool {
			return e.Msg == "answered" && sameMAC(e.Str("mac"), mac) && strings.HasSuffix(e.Str("path"), suffix)
		},
	}
}

// tftpDone: a complete TFTP transfer of file to the machine. The TFTP
// server knows the client's IP; rackboot adds the MAC from the neighbour
// table when it has it, else the IP must be the machine's site lease.
func tftpDone(file, mac string, ip netip.Addr) expectation {
	return expectation{
		name: "TFTP transfer of " + file + " to " + mac + " (" + ip.String() + ")",
		match: func(e lab.LogEntry) bool {
			if e.Msg != "tftp transfer done" || path.Base(e.Str("path")) != file {
				return false
			}
			if m := e.Str("mac"); m != "" {
				return sameMAC(m, mac)
			}
			return e.Str("ip") == ip.String()
		},
	}
}

// scriptServed: the per-machine script, GET /ipxe?mac=MAC.
func scriptServed(mac string) expectation {
	return expectation{
		name: "script /ipxe for mac=" + mac,
		match: func(e lab.LogEntry) bool {
			return e.Msg == "script served" && e.Str("path") == "/ipxe" && sameMAC(e.Str("mac"), mac)
		},
	}
}

// artifactServed: GET /artifacts/NAME?mac=MAC answered with the file.
func artifactServed(name, mac string) expectation {
	return expectation{
		name: "artifact " + name + " for mac=" + mac,
		match: func(e lab.LogEntry) bool {
			st := e.Str("status")
			return e.Msg == "artifact request" && path.Base(e.Str("path")) == name &&
				(st == "200" || st == "206") && sameMAC(e.Str("mac"), mac)
		},
	}
}

// unknownIgnored: rackboot saw a PXE request from mac and chose not to
// answer because no profile names it.
func unknownIgnored(mac string) expectation {
	return expectation{
		name: "line showing unknown " + mac + " seen and not answered",
		match: func(e lab.LogEntry) bool {
			return strings.HasPrefix(e.Msg, "unknown host not answered") && sameMAC(e.Str("mac"), mac)
		},
	}
}

// markerFields splits "RACKBOOT_E2E_MARKER k=v k=v" into its fields.
func markerFields(line string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = v
		}
	}
	return out
}

func sameMAC(a, b string) bool {
	x, err1 := net.ParseMAC(a)
	y, err2 := net.ParseMAC(b)
	return err1 == nil && err2 == nil && x.String() == y.String()
}

// since drops the entries logged before t (another machine's boot).
func since(entries []lab.LogEntry, t time.Time) []lab.LogEntry {
	var out []lab.LogEntry
	for _, e := range entries {
		if !e.Time.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

func logged(entries []lab.LogEntry, match func(lab.LogEntry) bool) bool {
	for _, e := range entries {
		if match(e) {
			return true
		}
	}
	return false
}

func raw(entries []lab.LogEntry) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Raw + "\n")
	}
	return b.String()
}
