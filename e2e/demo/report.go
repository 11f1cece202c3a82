package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
)

// report prints the final table, one row per machine, then each power-on's
// timeline: seconds from power-on to each step, from rackboot's log and
// the machine's serial console. Failed machines get their last console
// lines below.
func report(out io.Writer, ms []*machine, serverLog string) error {
	entries, err := lab.ReadLog(serverLog)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nthe rack (hostname, address, OS and cloud-init: what each installed machine answered over SSH):")
	if err := table(out, ms); err != nil {
		return err
	}
	var installs, boots []lab.Timeline
	for _, m := range ms {
		if m.install != nil {
			tl, err := lab.NewTimeline(m.install, entries, rack.InstallMilestones(m.MAC))
			if err != nil {
				return err
			}
			tl.Points = append(tl.Points, point("off", m.installEnd.Off))
			installs = append(installs, tl)
		}
		if m.boot != nil {
			tl, err := lab.NewTimeline(m.boot, entries, rack.DebianBootMilestones(m.MAC))
			if err != nil {
				return err
			}
			tl.Points = append(tl.Points, point("ssh", m.login), point("cloud-init", m.settled), point("off", m.off))
			boots = append(boots, tl)
		}
	}
	if len(installs) > 0 {
		fmt.Fprintf(out, "\ninstall, seconds from power-on (pxe: rackboot's first DHCP answer; script: the installer's iPXE script; "+
			"agent…done: the agent on the console; off: QEMU ended by the agent's reboot):\n%s", lab.FormatTimelines(installs))
	}
	if len(boots) > 0 {
		fmt.Fprintf(out, "\nboot from disk, seconds from power-on (local: rackboot's script says boot the disk; grub, linux, systemd: "+
			"the installed system on the console; ssh: the demo logged in; cloud-init: `cloud-init status --wait` returned; "+
			"off: QEMU ended after the demo's poweroff):\n%s", lab.FormatTimelines(boots))
	}
	for _, m := range ms {
		if m.err == nil || m.result() == "interrupted" {
			continue
		}
		vm := m.boot
		if vm == nil {
			vm = m.install
		}
		if vm != nil {
			fmt.Fprintf(out, "\n%s: %v\nlast console lines (%s):\n%s", m.label(), m.err, vm.SerialLog(), vm.Tail(15))
		}
	}
	return nil
}

// table prints one row per machine.
func table(out io.Writer, ms []*machine) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "machine\tfirmware\tMAC\thostname\taddress\tOS\tinstall\tssh login\tcloud-init\tresult")
	for _, m := range ms {
		s := m.said
		row := []string{m.Name, m.Boot(), m.MAC.String(), orDash(s.hostname()), orDash(strings.Join(s.addresses(), " ")),
			orDash(s.version()), seconds(m.installTime()), seconds(m.login), orDash(s.cloudInit()), m.result()}
		if !m.installed {
			row[6] = "-"
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// point is a moment the demo measured itself, at from power-on; zero is
// one that did not happen.
func point(name string, at time.Duration) lab.Point {
	return lab.Point{Name: name, At: at, Found: at > 0}
}

// seconds formats a duration from power-on, "-" for one that did not
// happen.
func seconds(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
