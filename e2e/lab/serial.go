package lab

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Line is one line of a VM's serial console.
type Line struct {
	// At is when the line's first byte arrived, measured from power-on.
	// Firmware prints progress on one line over seconds ("Configuring
	// (net0 …)...... ok"); the first byte is when that step began.
	At   time.Duration
	Text string // without the line ending and terminal escape sequences
}

func (l Line) String() string { return fmt.Sprintf("%8.3f %s", l.At.Seconds(), l.Text) }

// console turns a serial byte stream into timestamped lines, writes them
// to a log ("   4.210 text" per line) and lets callers wait for a pattern.
type console struct {
	start time.Time
	now   func() time.Time // time.Now; a test clock in tests

	mu      sync.Mutex
	lines   []Line
	partial []byte        // the line being received
	partAt  time.Duration // when the partial line's first visible character came
	stamped bool          // partAt is set for the current partial line
	eof     bool
	changed chan struct{} // closed and replaced whenever lines or partial grow
}

func newConsole(start time.Time, now func() time.Time) *console {
	return &console{start: start, now: now, changed: make(chan struct{})}
}

// copy reads r until EOF, recording lines and writing them to log.
func (c *console) copy(r io.Reader, log io.Writer) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			for _, l := range c.feed(buf[:n]) {
				fmt.Fprintln(log, l)
			}
		}
		if err != nil {
			if l, ok := c.finish(); ok {
				fmt.Fprintln(log, l)
			}
			return
		}
	}
}

// feed adds bytes and returns the lines they completed.
func (c *console) feed(b []byte) []Line {
	at := c.now().Sub(c.start)
	c.mu.Lock()
	defer c.mu.Unlock()
	var done []Line
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.partial = append(c.partial, b...)
			c.stamp(at)
			break
		}
		c.partial = append(c.partial, b[:i]...)
		b = b[i+1:]
		c.stamp(at)
		l := Line{At: c.partAt, Text: cleanLine(c.partial)}
		c.lines = append(c.lines, l)
		done = append(done, l)
		c.partial = c.partial[:0]
		c.stamped = false
	}
	c.notify()
	return done
}

// stamp sets the time of the line being received when its first visible
// character arrives. Firmware emits invisible escape sequences long before
// the next text (iPXE resets colours, then the kernel decompresses for
// seconds), so the first byte would date the line too early.
func (c *console) stamp(at time.Duration) {
	if !c.stamped && cleanLine(c.partial) != "" {
		c.partAt, c.stamped = at, true
	}
	if !c.stamped {
		c.partAt = at
	}
}

// finish records the unterminated last line, if any, at end of stream.
func (c *console) finish() (Line, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eof = true
	defer c.notify()
	if len(c.partial) == 0 {
		return Line{}, false
	}
	l := Line{At: c.partAt, Text: cleanLine(c.partial)}
	c.lines = append(c.lines, l)
	c.partial, c.stamped = nil, false
	return l, true
}

func (c *console) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// snapshot returns the complete lines, the line being received (Text ""
// when none), a channel closed on the next change, and whether the stream
// has ended.
func (c *console) snapshot() (lines []Line, partial Line, changed <-chan struct{}, eof bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines = append([]Line(nil), c.lines...)
	if len(c.partial) > 0 {
		partial = Line{At: c.partAt, Text: cleanLine(c.partial)}
	}
	return lines, partial, c.changed, c.eof
}

// all returns the complete lines followed by the line being received.
func (c *console) all() []Line {
	lines, partial, _, _ := c.snapshot()
	if partial.Text != "" {
		lines = append(lines, partial)
	}
	return lines
}

// find returns the first line matching re, including a line still being
// received: its time is known before it ends.
func (c *console) find(re *regexp.Regexp) (Line, bool) {
	for _, l := range c.all() {
		if re.MatchString(l.Text) {
			return l, true
		}
	}
	return Line{}, false
}

// cleanLine removes terminal escape sequences and control characters.
// SeaBIOS, OVMF and iPXE colour and position their text with ANSI
// sequences: CSI (ESC [ parameters intermediates final) and two-byte ESC
// forms. A carriage return inside a line becomes a space: firmware uses
// "\r" to redraw a progress line, and the redrawn text is what matters.
func cleanLine(b []byte) string {
	b = bytes.TrimRight(b, "\r")
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		ch := b[i]
		switch {
		case ch == 0x1b && i+1 < len(b) && b[i+1] == '[':
			i += 2
			for i < len(b) && b[i] >= 0x20 && b[i] <= 0x3f { // parameters, intermediates
				i++
			}
			// b[i] is the final byte (0x40-0x7e); the loop's i++ skips it.
		case ch == 0x1b:
			i++ // a two-byte sequence such as ESC c or ESC 7
		case ch == '\r':
			out = append(out, ' ')
		case ch == '\t' || ch >= 0x20 && ch != 0x7f:
			out = append(out, ch)
		}
	}
	return string(out)
}

// tail returns the last n lines as text, for failure messages.
func (c *console) tail(n int) string {
	lines := c.all()
	lines = lines[max(0, len(lines)-n):]
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintln(&b, l)
	}
	return b.String()
}

// findPattern returns the first line matching the regular expression
// pattern.
func (c *console) findPattern(pattern string) (Line, bool, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return Line{}, false, fmt.Errorf("lab: %w", err)
	}
	l, ok := c.find(re)
	return l, ok, nil
}
