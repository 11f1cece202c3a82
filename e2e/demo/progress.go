package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// pollInterval is how often progress looks at the log and the consoles:
// often enough to read live, rarely enough to cost nothing.
const pollInterval = 250 * time.Millisecond

// progress prints each machine's boot as it happens: rackboot's log lines
// about it and the milestones on its serial console, in seconds since the
// machines were powered on.
type progress struct {
	out      io.Writer
	start    time.Time // power-on
	machines []*machine
	log      logTail

	entries []lab.LogEntry    // rackboot's log so far, for the timelines
	ips     map[string]string // site DHCP address → MAC, learned from the log
	// unknown are recent entries from an address not yet learned: the
	// next lines usually tell whose it is.
	unknown []lab.LogEntry
	shown   map[*machine]map[string]bool
}

// event is one progress line.
type event struct {
	at   time.Duration // since power-on
	m    *machine
	text string
}

func newProgress(out io.Writer, start time.Time, ms []*machine, serverLog string) *progress {
	p := &progress{out: out, start: start, machines: ms, log: logTail{name: serverLog},
		ips: map[string]string{}, shown: map[*machine]map[string]bool{}}
	for _, m := range ms {
		p.shown[m] = map[string]bool{}
	}
	return p
}

// follow prints progress until every machine has printed its marker, given
// up after timeout, or ctx ended. Each machine's outcome is left in it.
func (p *progress) follow(ctx context.Context, timeout time.Duration) {
	done := make(chan *machine)
	var wg sync.WaitGroup
	for _, m := range p.machines {
		wg.Go(func() {
			m.waitMarker(ctx, timeout)
			done <- m
		})
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for pending := len(p.machines); pending > 0; {
		select {
		case m := <-done:
			pending--
			p.poll()
			p.showOutcome(m)
		case <-tick.C:
			p.poll()
		}
	}
	wg.Wait()
}

// poll prints what happened since the last poll, in time order.
func (p *progress) poll() {
	var evs []event
	evs = append(evs, p.serverEvents()...)
	for _, m := range p.machines {
		evs = append(evs, p.consoleEvents(m)...)
	}
	p.printSorted(evs)
}

// printSorted prints events in time order.
func (p *progress) printSorted(evs []event) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	for _, e := range evs {
		p.print(e)
	}
}

// unknownFor is how long an entry from an unlearned address waits to be
// attributed to a machine before it is dropped as someone else's.
const unknownFor = 10 * time.Second

// serverEvents reads rackboot's new log lines and returns those about the
// machines.
func (p *progress) serverEvents() []event {
	entries, err := p.log.next()
	if err != nil {
		fmt.Fprintf(p.out, "demo: reading rackboot's log: %v\n", err)
	}
	for _, e := range entries {
		p.learn(e)
	}
	p.entries = append(p.entries, entries...)
	var evs []event
	var still []lab.LogEntry
	for _, e := range append(p.unknown, entries...) {
		text, ok := describe(e)
		if !ok {
			continue
		}
		m := p.machineOf(e)
		switch {
		case m != nil:
			evs = append(evs, event{at: e.Time.Sub(p.start), m: m, text: text})
		case p.identify(e) == "" && time.Since(e.Time) < unknownFor:
			still = append(still, e)
		}
	}
	p.unknown = still
	return evs
}

// consoleEvents returns the console milestones of m not shown yet.
func (p *progress) consoleEvents(m *machine) []event {
	var evs []event
	for _, c := range consoleMilestones() {
		if p.shown[m][c.pattern] {
			continue
		}
		l, ok, err := m.vm.Find(c.pattern)
		if err != nil || !ok {
			continue
		}
		p.shown[m][c.pattern] = true
		text := c.text
		if text == "" {
			text = "console: " + l.Text
		}
		evs = append(evs, event{at: m.vm.Started().Sub(p.start) + l.At, m: m, text: text})
	}
	return evs
}

// showPowerOn prints when each machine was powered on.
func (p *progress) showPowerOn() {
	evs := make([]event, len(p.machines))
	for i, m := range p.machines {
		evs[i] = event{at: m.vm.Started().Sub(p.start), m: m,
			text: fmt.Sprintf("powered on: %s, MAC %s", m.firmwareName(), m.mac)}
	}
	p.printSorted(evs)
}

// showOutcome prints how m's wait for its marker ended.
func (p *progress) showOutcome(m *machine) {
	switch {
	case errors.Is(m.err, context.Canceled):
		// Interrupted: the table says so, the error adds nothing.
	case m.err == nil:
		p.print(event{at: m.vm.Started().Sub(p.start) + m.marker.At, m: m,
			text: "console: " + m.marker.Text + "  => booted"})
	default:
		p.print(event{at: time.Since(p.start), m: m, text: "no boot: " + m.err.Error()})
	}
}

func (p *progress) print(e event) {
	fmt.Fprintf(p.out, "%6.1fs  %-14s %s\n", e.at.Seconds(), e.m.label(), e.text)
}

// learn remembers which MAC uses which address. rackboot logs both on
// most lines, but /boot.ipxe only with the address, and a TFTP transfer
// with the MAC only when the neighbour table had it.
func (p *progress) learn(e lab.LogEntry) {
	hw, err := net.ParseMAC(e.Str("mac"))
	if ip := entryIP(e); err == nil && ip != "" {
		p.ips[ip] = hw.String()
	}
}

// identify returns the MAC a log entry is about: its own mac attribute, or
// the one learned for its ip; "" when unknown.
func (p *progress) identify(e lab.LogEntry) string {
	if hw, err := net.ParseMAC(e.Str("mac")); err == nil {
		return hw.String()
	}
	return p.ips[entryIP(e)]
}

// entryIP is the client address of a log entry: DHCP lines log it with
// the port, and 0.0.0.0 before the client has an address, which says
// nothing.
func entryIP(e lab.LogEntry) string {
	s := e.Str("ip")
	if ap, err := netip.ParseAddrPort(s); err == nil {
		s = ap.Addr().String()
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.IsUnspecified() {
		return ""
	}
	return a.String()
}

// machineOf returns the machine a log entry is about, or nil.
func (p *progress) machineOf(e lab.LogEntry) *machine {
	mac := p.identify(e)
	for _, m := range p.machines {
		if sameMAC(mac, m.mac.String()) {
			return m
		}
	}
	return nil
}

// logTail reads a JSON log as it grows, complete lines only.
type logTail struct {
	name   string
	offset int64
}

// next returns the entries written since the previous call.
func (t *logTail) next() ([]lab.LogEntry, error) {
	f, err := os.Open(t.name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(t.offset, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil, nil // nothing, or half a line still being written
	}
	t.offset += int64(end + 1)
	return lab.ParseLog(bytes.NewReader(b[:end+1]))
}
