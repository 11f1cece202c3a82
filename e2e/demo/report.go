package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

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
	fmt.Fprintln(out, "\nthe rack (hostname, version and data: what each machine's installed OS printed on its console):")
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
			installs = append(installs, withOff(tl, m.installEnd))
		}
		if m.boot != nil {
			tl, err := lab.NewTimeline(m.boot, entries, rack.BootMilestones(m.MAC))
			if err != nil {
				return err
			}
			boots = append(boots, withOff(tl, m.bootEnd))
		}
	}
	if len(installs) > 0 {
		fmt.Fprintf(out, "\ninstall, seconds from power-on (pxe: rackboot's first DHCP answer; script: the installer's iPXE script; "+
			"agent…done: the agent on the console; off: QEMU ended by the agent's reboot):\n%s", lab.FormatTimelines(installs))
	}
	if len(boots) > 0 {
		fmt.Fprintf(out, "\nboot from disk, seconds from power-on (local: rackboot's script says boot the disk; os: the installed OS's first line):\n%s",
			lab.FormatTimelines(boots))
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
	fmt.Fprintln(tw, "machine\tfirmware\tMAC\tlayout\thostname\tversion\tinstall\tdata partition\tresult")
	for _, m := range ms {
		r := m.report
		row := []string{m.Name, m.Boot(), m.MAC.String(), m.host.Layout.Name,
			orDash(r.Hostname), orDash(r.Version), "-", orDash(r.Data), m.result()}
		if m.installed {
			row[6] = fmt.Sprintf("%.1f s", m.installTime().Seconds())
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// withOff adds the moment QEMU ended to a timeline.
func withOff(tl lab.Timeline, end rack.Ending) lab.Timeline {
	tl.Points = append(tl.Points, lab.Point{Name: "off", At: end.Off, Found: end.Off > 0})
	return tl
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
