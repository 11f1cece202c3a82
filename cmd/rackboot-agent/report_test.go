package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a console screen tests read while goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func fixedUptime(d time.Duration) func() time.Duration { return func() time.Duration { return d } }

func TestConsole(t *testing.T) {
	var screen bytes.Buffer
	con := newConsole(&screen, fixedUptime(12345678*time.Microsecond))
	log := newLogger(con, slog.LevelInfo)
	log.Info("plan received", "host", "n01", "phase", "plan")
	log.Warn("dhcp failed, retrying", "err", errors.New("no offer"))
	log.Debug("not shown")
	con.Printf("progress image 10%%\n")

	want := "" +
		"[   12.345] msg=\"plan received\" host=n01 phase=plan\n" +
		"[   12.345] level=WARN msg=\"dhcp failed, retrying\" err=\"no offer\"\n" +
		"[   12.345] progress image 10%\n"
	if diff := cmp.Diff(want, screen.String()); diff != "" {
		t.Errorf("console (-want +got):\n%s", diff)
	}
	// Log lines go to the appliance, console-only lines do not.
	wantLines := []string{
		`[   12.345] msg="plan received" host=n01 phase=plan`,
		`[   12.345] level=WARN msg="dhcp failed, retrying" err="no offer"`,
	}
	if diff := cmp.Diff(wantLines, con.take()); diff != "" {
		t.Errorf("queued lines (-want +got):\n%s", diff)
	}
	if got := con.take(); len(got) != 0 {
		t.Errorf("second take: %q", got)
	}
	con.close()
	log.Info("after the report")
	if got := con.take(); len(got) != 0 {
		t.Errorf("lines queued after close: %q", got)
	}
}

func TestConsoleBound(t *testing.T) {
	con := newConsole(&bytes.Buffer{}, fixedUptime(0))
	for i := range maxPending + 10 {
		fmt.Fprintf(con, "line %d\n", i)
	}
	lines := con.take()
	if len(lines) != maxPending+1 {
		t.Fatalf("%d lines, want %d kept and a note", len(lines), maxPending)
	}
	if !strings.Contains(lines[0], "10 log lines dropped") || !strings.HasSuffix(lines[1], "line 10") {
		t.Errorf("first lines %q, %q", lines[0], lines[1])
	}
	con.putBack(lines[1:])
	fmt.Fprintf(con, "newest\n")
	lines = con.take()
	if len(lines) != maxPending+1 || !strings.Contains(lines[0], "1 log lines dropped") || !strings.HasSuffix(lines[len(lines)-1], "newest") {
		t.Errorf("after putBack: %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
}

func TestShipper(t *testing.T) {
	con := newConsole(&bytes.Buffer{}, fixedUptime(0))
	var sent [][]string
	var again []bool
	var fail error
	s := &shipper{con: con, post: func(_ context.Context, l agentapi.Log) error {
		if fail != nil {
			return fail
		}
		sent = append(sent, l.Lines)
		again = append(again, l.Again)
		return nil
	}}
	ctx := context.Background()
	for i := range maxBatch + 1 {
		fmt.Fprintf(con, "%d\n", i)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 2 || len(sent[0]) != maxBatch || len(sent[1]) != 1 {
		t.Fatalf("batches of %d lines, want %d and 1", batchSizes(sent), maxBatch)
	}

	sent, again = nil, nil
	fail = &apiError{Status: 503, Msg: "busy"}
	fmt.Fprintf(con, "kept\n")
	if err := s.flush(ctx); err == nil {
		t.Fatal("flush hid an error")
	}
	fail = nil
	fmt.Fprintf(con, "later\n")
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The batch that got no answer goes again as it was, marked, then
	// the lines after it.
	if diff := cmp.Diff([][]string{{"[    0.000] kept"}, {"[    0.000] later"}}, sent); diff != "" {
		t.Errorf("after a retryable failure (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{true, false}, again); diff != "" {
		t.Errorf("Again after a retryable failure (-want +got):\n%s", diff)
	}

	sent = nil
	fail = &apiError{Status: 401, Msg: "invalid or expired install token"}
	fmt.Fprintf(con, "refused\n")
	s.flush(ctx)
	fail = nil
	fmt.Fprintf(con, "not sent\n")
	if err := s.flush(ctx); err != nil || len(sent) != 0 {
		t.Errorf("after a 401 the shipper sent %q (%v), want nothing", sent, err)
	}
}

func batchSizes(b [][]string) []int {
	var n []int
	for _, l := range b {
		n = append(n, len(l))
	}
	return n
}

func TestProgressConsole(t *testing.T) {
	var screen bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0)}
	p := newProgress(newConsole(&screen, fixedUptime(0)), clock.now)
	p.Set(imaging.Progress{Phase: "plan"})
	p.Set(imaging.Progress{Phase: "image", Done: 1 << 20, Total: 4 << 20, Received: 1 << 19, Rate: 1 << 20})
	clock.add(300 * time.Millisecond)
	p.Set(imaging.Progress{Phase: "image", Done: 2 << 20, Total: 4 << 20}) // too soon: not shown
	clock.add(300 * time.Millisecond)
	p.Set(imaging.Progress{Phase: "image", Done: 4 << 20, Total: 4 << 20}) // the final count, too soon
	p.Set(imaging.Progress{Phase: "partition"})                            // shows the final count first
	clock.add(2 * time.Second)
	p.Set(imaging.Progress{Phase: "partition"})

	want := "" +
		"[    0.000] progress plan\n" +
		"[    0.000] progress image 25% 1.0 MiB of 4.0 MiB (0.5 MiB received) at 1.0 MiB/s\n" +
		"[    0.000] progress image 100% 4.0 MiB of 4.0 MiB\n" +
		"[    0.000] progress partition\n" +
		"[    0.000] progress partition\n"
	if diff := cmp.Diff(want, screen.String()); diff != "" {
		t.Errorf("console (-want +got):\n%s", diff)
	}
	if got := p.Phase(); got != "partition" {
		t.Errorf("Phase() = %q", got)
	}
}

// TestProgressReports: the latest progress is sent once per interval, and
// not again while it does not change.
func TestProgressReports(t *testing.T) {
	got := make(chan agentapi.Progress, 10)
	p := newProgress(newConsole(&bytes.Buffer{}, fixedUptime(0)), time.Now)
	p.post = func(_ context.Context, r agentapi.Progress) error { got <- r; return nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.run(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	p.Set(imaging.Progress{Phase: "image", Done: 1, Total: 10, Rate: 2})
	p.Set(imaging.Progress{Phase: "image", Done: 5, Total: 10, Rate: 2})
	want := agentapi.Progress{Phase: "image", Done: 5, Total: 10, Rate: 2}
	select {
	case r := <-got:
		if r != want {
			t.Errorf("sent %+v, want %+v", r, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no progress sent")
	}
	select {
	case r := <-got:
		t.Errorf("unchanged progress sent again: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
}
