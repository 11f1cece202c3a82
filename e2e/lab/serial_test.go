package lab

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCleanLine(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "iPXE initialising devices...ok", "iPXE initialising devices...ok"},
		{"crlf", "BdsDxe: loading Boot0001\r", "BdsDxe: loading Boot0001"},
		{"colour", "\x1b[0m\x1b[1;37;40mPress Ctrl-B\x1b[0m", "Press Ctrl-B"},
		{"cursor", "\x1b[2J\x1b[01;01H\x1b[=3h>>Start PXE", ">>Start PXE"},
		{"two-byte escape", "\x1bcreset", "reset"},
		{"progress redraw", "Configuring...\r ok", "Configuring...  ok"},
		{"control bytes", "a\x00b\x07c\x7fd\te", "abcd\te"},
		{"unfinished escape", "text\x1b[1;3", "text"},
		{"only escapes", "\x1b[0m\r", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cleanLine([]byte(tt.in)); got != tt.want {
				t.Errorf("cleanLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// fakeClock returns the times it is set to, to date console chunks.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestConsoleLines(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := &fakeClock{t: start}
	c := newConsole(start, clock.now)
	var log bytes.Buffer
	chunks := []struct {
		at   time.Duration
		data string
	}{
		{100 * time.Millisecond, "SeaBIOS (version 1.16)\r\n"},
		{200 * time.Millisecond, "Configuring (net0)..."},
		{2300 * time.Millisecond, ". ok\r\n\x1b[0m"}, // escapes start the next line invisibly
		{7 * time.Second, "RACKBOOT_E2E_MARKER mac=52:54:00:77:00:01"},
		{7100 * time.Millisecond, " uptime=1.9\n"},
		{7200 * time.Millisecond, "[    2.09] reboot: Power down"}, // no newline: ended by EOF
	}
	for _, ch := range chunks {
		clock.t = start.Add(ch.at)
		for _, l := range c.feed([]byte(ch.data)) {
			log.WriteString(l.String() + "\n")
		}
	}
	if _, partial, _, _ := c.snapshot(); partial.Text != "[    2.09] reboot: Power down" {
		t.Errorf("partial line = %q", partial.Text)
	}
	if l, ok := c.finish(); ok {
		log.WriteString(l.String() + "\n")
	}
	want := []Line{
		{100 * time.Millisecond, "SeaBIOS (version 1.16)"},
		{200 * time.Millisecond, "Configuring (net0).... ok"},
		{7 * time.Second, "RACKBOOT_E2E_MARKER mac=52:54:00:77:00:01 uptime=1.9"},
		{7200 * time.Millisecond, "[    2.09] reboot: Power down"},
	}
	lines, _, _, eof := c.snapshot()
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if !eof {
		t.Error("eof not recorded")
	}
	wantLog := "   0.100 SeaBIOS (version 1.16)\n" +
		"   0.200 Configuring (net0).... ok\n" +
		"   7.000 RACKBOOT_E2E_MARKER mac=52:54:00:77:00:01 uptime=1.9\n" +
		"   7.200 [    2.09] reboot: Power down\n"
	if diff := cmp.Diff(wantLog, log.String()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if l, ok := c.find(regexp.MustCompile(`net0`)); !ok || l.At != 200*time.Millisecond {
		t.Errorf("find(net0) = %v, %v", l, ok)
	}
}

func TestConsoleNotifies(t *testing.T) {
	c := newConsole(time.Now(), time.Now)
	_, _, changed, _ := c.snapshot()
	c.feed([]byte("x"))
	select {
	case <-changed:
	default:
		t.Fatal("feed did not signal a change")
	}
	_, _, changed, _ = c.snapshot()
	c.finish()
	select {
	case <-changed:
	default:
		t.Fatal("finish did not signal a change")
	}
}
