package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

// watchView is what `rackboot watch` shows: the machines that are busy
// installing and a line per change. On a terminal the busy machines are a
// block of progress bars at the bottom, redrawn in place with ANSI escapes
// (ECMA-48 CPL and ED), and the lines scroll above it; elsewhere everything
// is a plain line, progress at most once per interval per machine, so that
// a log file or CI output stays readable.
type watchView struct {
	out      io.Writer
	loc      *time.Location
	interval time.Duration
	now      func() time.Time

	tty           bool
	width, height int
	// json prints each event as a JSON line (watchEvent) instead of
	// text: the view still follows the machines for --until-idle.
	json bool

	active   map[string]*watched // by MAC
	seen     bool                // a machine was busy during the watch
	failures int                 // attempts that failed during the watch
	drawn    int                 // bar lines on the screen
	dirty    bool
	drawnAt  time.Time
}

// watched is a busy machine: loading its installer or installing.
type watched struct {
	mac, hostname string
	attempt       int
	version       registry.Version
	installing    bool // false: its installer is loading
	progress      *api.ProgressEvent
	received      time.Time // local time of the last report, to tell a stalled agent
	// printedAt and printedPhase are the last plain progress line's.
	printedAt    time.Time
	printedPhase agentapi.Phase
}

func (m *watched) name() string {
	if m.hostname == "" {
		return m.mac
	}
	return m.hostname
}

// machineLabel names a machine in a line: hostname and MAC, so both grep.
func machineLabel(mac, hostname string) string {
	if hostname == "" {
		return mac
	}
	return hostname + " (" + mac + ")"
}

// track returns the busy machine mac, adding it.
func (v *watchView) track(mac, hostname string) *watched {
	if v.active == nil {
		v.active = map[string]*watched{}
	}
	m := v.active[mac]
	if m == nil {
		m = &watched{mac: mac, received: v.now()}
		v.active[mac] = m
	}
	if hostname != "" {
		m.hostname = hostname
	}
	v.seen, v.dirty = true, true
	return m
}

func (v *watchView) untrack(mac string) {
	if _, ok := v.active[mac]; ok {
		delete(v.active, mac)
		v.dirty = true
	}
}

// idle reports whether machines were busy and none is any more.
func (v *watchView) idle() bool { return v.seen && len(v.active) == 0 }

// names lists the busy machines, for a timeout's message.
func (v *watchView) names() []string {
	var out []string
	for _, m := range v.sorted() {
		out = append(out, m.name())
	}
	return out
}

func (v *watchView) sorted() []*watched {
	ms := make([]*watched, 0, len(v.active))
	for _, m := range v.active {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *watched) int { return strings.Compare(a.mac, b.mac) })
	return ms
}

// snapshot sets the installing machines from GET /api/hosts?state=installing:
// at the start, and again when events were lost. A machine whose installer
// is loading is not in it and stays.
func (v *watchView) snapshot(hs []api.HostView) {
	v.emit(watchSnapshot, hs)
	now := v.now()
	in := map[string]bool{}
	for _, h := range hs {
		in[h.MAC] = true
		_, known := v.active[h.MAC]
		m := v.track(h.MAC, h.Hostname)
		m.installing, m.attempt = true, h.Attempt
		if h.Current != nil {
			m.version = h.Current.Version
		}
		if h.Progress != nil {
			p := *h.Progress
			m.progress = &p
		}
		if !known {
			since := h.Since
			if since.IsZero() {
				since = now
			}
			v.line(since, machineLabel(h.MAC, h.Hostname), "installing "+versionString(m.version)+fmt.Sprintf(", attempt %d", m.attempt))
		}
	}
	for _, m := range v.sorted() {
		if m.installing && !in[m.mac] {
			v.untrack(m.mac)
			v.line(now, machineLabel(m.mac, m.hostname), "is no longer installing (see rackboot history)")
		}
	}
}

// handle shows one event of the stream.
func (v *watchView) handle(ev sseEvent) {
	switch ev.Type {
	case api.EventProgress:
		var p api.ProgressEvent
		if err := json.Unmarshal([]byte(ev.Data), &p); err != nil {
			v.notice("ignored a malformed progress event: " + err.Error())
			return
		}
		v.emit(ev.Type, json.RawMessage(ev.Data))
		v.onProgress(p)
	case api.EventState:
		var s api.StateEvent
		if err := json.Unmarshal([]byte(ev.Data), &s); err != nil {
			v.notice("ignored a malformed state event: " + err.Error())
			return
		}
		v.emit(ev.Type, json.RawMessage(ev.Data))
		v.onState(s)
	case api.EventRollout:
		var r api.RolloutEvent
		if err := json.Unmarshal([]byte(ev.Data), &r); err != nil {
			v.notice("ignored a malformed rollout event: " + err.Error())
			return
		}
		v.emit(ev.Type, json.RawMessage(ev.Data))
		at := r.At
		if at.IsZero() {
			at = v.now()
		}
		v.line(at, "rollout "+r.ID, fmt.Sprintf("%s (%s, wave %d of %d)", oneLine(r.Text), r.Status, r.Wave, r.Waves))
	}
}

func (v *watchView) onState(s api.StateEvent) {
	h := s.Host
	at := h.UpdatedAt
	if at.IsZero() {
		at = v.now()
	}
	who := machineLabel(h.MAC, h.Hostname)
	a := s.Attempt
	switch s.Event {
	case "boot":
		switch h.State {
		case registry.StatePending:
			m := v.track(h.MAC, h.Hostname)
			m.installing, m.attempt, m.progress = false, h.Attempt+1, nil
			v.line(at, who, fmt.Sprintf("booted its installer, attempt %d", m.attempt))
		case registry.StateInstalled:
			v.line(at, who, "boots from its disk ("+versionString(h.Version)+")")
		case registry.StateFailed:
			v.line(at, who, "boots nothing: its install failed; reinstall it to try again")
		case registry.StateDiscovered:
			v.line(at, who, "discovered: not in the profiles")
		}
	case "start":
		m := v.track(h.MAC, h.Hostname)
		m.installing, m.attempt = true, h.Attempt
		if a != nil {
			m.version = a.Version
		}
		v.line(at, who, fmt.Sprintf("installing %s, attempt %d", versionString(m.version), m.attempt))
	case "done":
		v.untrack(h.MAC)
		msg := "installed " + versionString(h.Version)
		if a != nil {
			if a.DurationMS > 0 {
				msg += " in " + humanDuration(time.Duration(a.DurationMS)*time.Millisecond)
			}
			if a.BytesWritten > 0 {
				msg += ", " + humanBytes(a.BytesWritten) + " written"
			}
			if t := transferText(a.BytesFetched, a.BytesFetchedPeers, a.BytesReused, a.ImageRawSize); t != "" {
				msg += ", " + t
			}
		}
		v.line(at, who, msg)
	case "failed":
		v.untrack(h.MAC)
		v.failures++
		why := h.LastError
		n := h.Attempt
		if a != nil {
			why, n = a.Error, a.Number
			if a.Phase != "" {
				why = a.Phase + ": " + why
			}
		}
		if h.State == registry.StateFailed {
			v.line(at, who, fmt.Sprintf("FAILED for good at attempt %d: %s", n, oneLine(why)))
		} else {
			v.line(at, who, fmt.Sprintf("attempt %d failed: %s; it retries at its next PXE boot", n, oneLine(why)))
		}
	case "superseded":
		v.untrack(h.MAC)
		v.line(at, who, "attempt superseded by a reinstall request")
	case "reinstall":
		msg := "marked pending"
		if r := h.Reinstall; r != nil {
			if r.By != "" {
				msg += " by " + oneLine(r.By)
			}
			if r.Reason != "" {
				msg += ": " + oneLine(r.Reason)
			}
		}
		v.line(at, who, msg)
	case "power":
		if n := len(h.Power); n > 0 {
			p := h.Power[n-1]
			msg := "power " + p.Action
			if p.NetBoot {
				msg += " with a one-time network boot"
			}
			if p.Result == registry.PowerOK {
				msg += ": ok, " + p.State
			} else {
				msg += ": FAILED, " + p.Kind + ": " + oneLine(p.Error)
			}
			v.line(at, who, msg)
		}
	}
}

func (v *watchView) onProgress(p api.ProgressEvent) {
	m := v.track(p.MAC, p.Hostname)
	m.installing = true
	m.attempt = p.Attempt
	m.progress = &p
	m.received = v.now()
	if v.tty {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, p.At)
	if err != nil {
		at = v.now()
	}
	if p.Phase == m.printedPhase && at.Sub(m.printedAt) < v.interval {
		return
	}
	m.printedAt, m.printedPhase = at, p.Phase
	v.line(at, machineLabel(m.mac, m.hostname), progressText(p))
}

// progressText is a progress report in words, for plain lines.
func progressText(p api.ProgressEvent) string {
	var b strings.Builder
	b.WriteString(string(p.Phase))
	if p.Total > 0 {
		fmt.Fprintf(&b, " %d%% %s of %s", percentOf(p.Done, p.Total), humanBytes(p.Done), humanBytes(p.Total))
	} else if p.Done > 0 {
		fmt.Fprintf(&b, " %s", humanBytes(p.Done))
	}
	if p.Rate > 0 {
		fmt.Fprintf(&b, ", %s", humanRate(p.Rate))
	}
	if t := transferText(p.Fetched, p.FetchedPeers, p.Reused, p.Total); t != "" {
		fmt.Fprintf(&b, ", %s", t)
	}
	if p.ETASeconds > 0 {
		fmt.Fprintf(&b, ", ETA %s", humanDuration(time.Duration(p.ETASeconds*float64(time.Second))))
	}
	return b.String()
}

func percentOf(done, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(min(100, max(0, done*100/total)))
}

// line prints a line that stays, above the bars on a terminal.
func (v *watchView) line(at time.Time, who, msg string) {
	if v.json {
		return // the event was printed whole
	}
	text := at.In(v.loc).Format("15:04:05") + " " + who + " " + msg + "\n"
	if !v.tty {
		io.WriteString(v.out, text)
		return
	}
	v.draw(text)
}

// notice prints a line about the watch itself.
func (v *watchView) notice(msg string) {
	if v.json {
		v.emit(watchNotice, watchMessage{At: v.now(), Message: msg})
		return
	}
	v.line(v.now(), "rackboot watch:", msg)
}

// The events of `rackboot watch --json` beside the stream's own
// (api.EventProgress, api.EventState).
const (
	// watchSnapshot is the installing machines, []api.HostView, read at
	// the start and again whenever the stream lost events.
	watchSnapshot = "snapshot"
	// watchNotice is news of the watch itself (watchMessage): a lost
	// stream, a malformed event.
	watchNotice = "notice"
)

// watchEvent is one line of `rackboot watch --json`: the event's type and
// its data as the daemon sent it (api/README.md).
type watchEvent struct {
	Event string `json:"event"`
	Data  any    `json:"data"`
}

type watchMessage struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// emit prints an event as one JSON line, with --json.
func (v *watchView) emit(event string, data any) {
	if !v.json {
		return
	}
	b, err := json.Marshal(watchEvent{Event: event, Data: data})
	if err != nil {
		b, _ = json.Marshal(watchEvent{Event: watchNotice, Data: watchMessage{At: v.now(), Message: err.Error()}})
	}
	v.out.Write(append(b, '\n'))
}

// staleAfter is how long an installing machine may stay silent before its
// bar says so: agents report every second or so.
const staleAfter = 30 * time.Second

// redraw repaints the bars if they changed, and every second while a
// machine is busy, so that a stalled one shows.
func (v *watchView) redraw() {
	if v.tty && (v.dirty || len(v.active) > 0 && v.now().Sub(v.drawnAt) >= time.Second) {
		v.draw("")
	}
}

// finish leaves the last bars on the screen.
func (v *watchView) finish() { v.redraw() }

// draw erases the bars, prints above (lines that stay), and draws the bars
// again, in one write so that the terminal never shows half a frame.
func (v *watchView) draw(above string) {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dF\x1b[J", v.drawn) // up to the first bar, erase below
	}
	b.WriteString(above)
	bars := v.bars()
	for _, l := range bars {
		b.WriteString(l + "\n")
	}
	io.WriteString(v.out, b.String())
	v.drawn, v.dirty, v.drawnAt = len(bars), false, v.now()
}

// bars renders one line per busy machine, as many as the terminal holds.
func (v *watchView) bars() []string {
	ms := v.sorted()
	room := max(1, v.height-2)
	more := 0
	if len(ms) > room {
		ms, more = ms[:room-1], len(ms)-room+1
	}
	nameW := 0
	for _, m := range ms {
		nameW = max(nameW, utf8.RuneCountInString(m.name()))
	}
	now := v.now()
	lines := make([]string, 0, len(ms)+1)
	for _, m := range ms {
		lines = append(lines, fitWidth(barLine(m, nameW, v.width, now), v.width))
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("… and %d more", more))
	}
	return lines
}

// barLine is a machine's line: name, phase, bar, numbers.
func barLine(m *watched, nameW, width int, now time.Time) string {
	name := m.name() + strings.Repeat(" ", nameW-utf8.RuneCountInString(m.name()))
	p := m.progress
	if p == nil {
		if m.installing {
			return fmt.Sprintf("%s  installing %s, attempt %d: waiting for its first report", name, versionString(m.version), m.attempt)
		}
		return fmt.Sprintf("%s  loading its installer, attempt %d", name, m.attempt)
	}
	var stats string
	if p.Total > 0 {
		stats = fmt.Sprintf("%3d%%  %s/%s", percentOf(p.Done, p.Total), humanBytes(p.Done), humanBytes(p.Total))
	} else {
		stats = humanBytes(p.Done)
	}
	stats += "  " + humanRate(p.Rate)
	if t := transferText(p.Fetched, p.FetchedPeers, p.Reused, p.Total); t != "" {
		stats += "  " + t
	}
	if p.ETASeconds > 0 {
		stats += "  ETA " + humanDuration(time.Duration(p.ETASeconds*float64(time.Second)))
	}
	if quiet := now.Sub(m.received); quiet >= staleAfter {
		stats += "  (no report for " + humanDuration(quiet) + ")"
	}
	head := fmt.Sprintf("%s  %-9s", name, p.Phase)
	if p.Total <= 0 {
		return head + "  " + stats
	}
	// Two blanks, the brackets and two blanks around the bar, and the
	// last column left free (see fitWidth).
	barW := min(40, width-utf8.RuneCountInString(head)-len(stats)-7)
	if barW < 10 {
		return head + "  " + stats
	}
	full := barW * percentOf(p.Done, p.Total) / 100
	return head + "  [" + strings.Repeat("█", full) + strings.Repeat("░", barW-full) + "]  " + stats
}

// fitWidth cuts s to the terminal's width less one column: a line that reaches
// the last column wraps on some terminals, and the in-place redraw would
// then count lines wrong.
func fitWidth(s string, width int) string {
	if width <= 1 || utf8.RuneCountInString(s) < width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1])
}
