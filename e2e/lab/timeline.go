package lab

import (
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
)

// Milestone is a moment of a network boot and how to recognise it: a
// console line matching Serial, or a server log entry for which Server
// returns true. Set one of the two.
type Milestone struct {
	Name   string
	Serial string              // regular expression over console lines
	Server func(LogEntry) bool // predicate over server log entries
}

// Point is when a milestone happened, measured from power-on.
type Point struct {
	Name  string
	At    time.Duration
	Found bool
}

// Timeline is one VM's milestones in the order they were asked for.
type Timeline struct {
	VM     string
	Points []Point
}

// At returns the point named name.
func (t Timeline) At(name string) (Point, bool) {
	for _, p := range t.Points {
		if p.Name == name {
			return p, true
		}
	}
	return Point{}, false
}

// NewTimeline places each milestone on v's time axis: the first matching
// console line, or the first matching server entry logged at or after
// power-on (earlier ones belong to another boot).
func NewTimeline(v *VM, server []LogEntry, milestones []Milestone) (Timeline, error) {
	return timeline(v.Name(), v.Started(), v.Lines(), server, milestones)
}

func timeline(name string, start time.Time, lines []Line, server []LogEntry, milestones []Milestone) (Timeline, error) {
	t := Timeline{VM: name}
	for _, m := range milestones {
		p := Point{Name: m.Name}
		switch {
		case m.Serial != "":
			re, err := regexp.Compile(m.Serial)
			if err != nil {
				return Timeline{}, fmt.Errorf("lab: milestone %s: %w", m.Name, err)
			}
			for _, l := range lines {
				if re.MatchString(l.Text) {
					p.At, p.Found = l.At, true
					break
				}
			}
		case m.Server != nil:
			for _, e := range server {
				if !e.Time.Before(start) && m.Server(e) {
					p.At, p.Found = e.Time.Sub(start), true
					break
				}
			}
		default:
			return Timeline{}, fmt.Errorf("lab: milestone %s matches nothing", m.Name)
		}
		t.Points = append(t.Points, p)
	}
	return t, nil
}

// FormatTimelines renders timelines as a table, one row per VM and one
// column per milestone (those of the first timeline), in seconds from
// power-on; "-" marks a milestone that did not happen.
func FormatTimelines(ts []Timeline) string {
	if len(ts) == 0 {
		return ""
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "vm\t")
	for _, p := range ts[0].Points {
		fmt.Fprintf(w, "%s\t", p.Name)
	}
	fmt.Fprintln(w)
	for _, t := range ts {
		fmt.Fprintf(w, "%s\t", t.VM)
		for _, head := range ts[0].Points {
			p, ok := t.At(head.Name)
			if ok && p.Found {
				fmt.Fprintf(w, "%.1fs\t", p.At.Seconds())
			} else {
				fmt.Fprint(w, "-\t")
			}
		}
		fmt.Fprintln(w)
	}
	w.Flush()
	return b.String()
}
