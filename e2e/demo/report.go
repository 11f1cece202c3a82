package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/rackboot/rackboot/e2e/lab"
)

// report prints the final table: one row per machine, its outcome, and the
// seconds from power-on to each milestone of its boot ("-" when it did
// not happen: BIOS machines fetch nothing over TFTP). Failed machines get
// their last console lines below it.
func report(out io.Writer, p *progress) error {
	p.poll() // the last lines of the log
	timelines := make([]lab.Timeline, len(p.machines))
	for i, m := range p.machines {
		tl, err := lab.NewTimeline(m.vm, p.entries, timelineMilestones(m, p.identify))
		if err != nil {
			return err
		}
		timelines[i] = tl
	}
	fmt.Fprintln(out, "\nseconds from each machine's power-on to each step (rackboot's log, serial consoles):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	head := []string{"machine", "hostname", "firmware", "MAC", "result"}
	for _, pt := range timelines[0].Points {
		head = append(head, pt.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for i, m := range p.machines {
		row := []string{m.name, m.hostname(), m.firmwareName(), m.mac.String(), m.result()}
		for _, pt := range timelines[i].Points {
			row = append(row, seconds(pt))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range p.machines {
		if m.err != nil && m.result() == "FAILED" {
			fmt.Fprintf(out, "\n%s: %v\nlast console lines:\n%s", m.label(), m.err, m.vm.Tail(15))
		}
	}
	return nil
}

func seconds(pt lab.Point) string {
	if !pt.Found {
		return "-"
	}
	return fmt.Sprintf("%.1f", pt.At.Seconds())
}
