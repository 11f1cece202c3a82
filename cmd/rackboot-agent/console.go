package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// maxPending bounds the log lines kept for the appliance while it cannot
// be reached: beyond it the oldest are dropped and counted.
const maxPending = 5000

// console is where everything the agent says goes: the machine's console,
// each line stamped with the time since boot like the kernel's own
// messages, and, for log lines, a queue that the shipper sends to the
// appliance. It is safe for concurrent use.
type console struct {
	w     io.Writer
	clock func() time.Duration // time since boot

	mu      sync.Mutex
	pending []string
	dropped int
	closed  bool // the attempt is reported: nothing more is sent
}

func newConsole(w io.Writer, clock func() time.Duration) *console {
	return &console{w: w, clock: clock}
}

// newLogger returns a logger writing logfmt lines to c, without the time
// (each line gets c's stamp) and without level=INFO, the usual case.
func newLogger(c *console, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.Attr{}
			case slog.LevelKey:
				if a.Value.Any() == slog.LevelInfo {
					return slog.Attr{}
				}
			}
			return a
		},
	}))
}

func (c *console) stamp() string {
	d := c.clock()
	return fmt.Sprintf("[%5d.%03d] ", d/time.Second, d%time.Second/time.Millisecond)
}

// Write takes one or more log lines (a slog handler writes one record per
// call), prints them and queues them for the appliance.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stamp()
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		line = st + line
		out.WriteString(line + "\n")
		if c.closed {
			continue
		}
		if len(c.pending) >= maxPending {
			c.pending = c.pending[1:]
			c.dropped++
		}
		c.pending = append(c.pending, line)
	}
	c.w.Write(out.Bytes()) // a console that fails has no one to tell
	return len(p), nil
}

// Printf prints a line on the console only: progress, and messages for
// whoever watches the machine.
func (c *console) Printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%s%s\n", c.stamp(), strings.TrimRight(fmt.Sprintf(format, args...), "\n"))
}

// take removes and returns the queued lines, preceded by a line counting
// those dropped since the last take.
func (c *console) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.pending
	if c.dropped > 0 {
		lines = append([]string{fmt.Sprintf("%s(%d log lines dropped: the appliance was unreachable)", c.stamp(), c.dropped)}, lines...)
		c.dropped = 0
	}
	c.pending = nil
	return lines
}

// putBack returns lines that could not be sent to the front of the queue,
// within the bound.
func (c *console) putBack(lines []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	all := append(lines, c.pending...)
	if n := len(all) - maxPending; n > 0 {
		all = all[n:]
		c.dropped += n
	}
	c.pending = all
}

// close stops queuing: once the attempt is reported the token is spent,
// and later lines are for the console only.
func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.pending = nil
}
