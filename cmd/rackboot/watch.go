package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// runWatch shows the machines that are installing, live: a progress bar per
// machine on a terminal, plain lines otherwise, and a line when one
// finishes or fails. It follows the daemon's event stream (GET /api/events)
// and reconnects when the daemon restarts.
func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).watch(ctx, args)
}

func (c *cli) watch(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("watch", "rackboot watch [--until-idle] [--timeout DURATION] [--plain | --json]")
	untilIdle := fs.Bool("until-idle", false, "exit once installs were seen and no machine is installing or loading its installer;\nexit status 1 if an attempt failed meanwhile")
	timeout := fs.Duration("timeout", 0, "exit after `duration` (with --until-idle: status 1 if machines are still installing)")
	plain := fs.Bool("plain", false, "plain lines even on a terminal")
	asJSON := fs.Bool("json", false, "print each event as a JSON line: {\"event\": progress|state|snapshot|notice, \"data\": …}")
	every := fs.Duration("interval", 5*time.Second, "plain lines: at most one progress line per machine per `duration`")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) > 0 {
		fmt.Fprintf(c.stderr, "rackboot watch: unexpected argument %q\n", pos[0])
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("watch", err)
	}
	v := &watchView{out: c.stdout, loc: c.loc, interval: *every, now: c.now, json: *asJSON}
	if w, h, ok := c.terminal(); ok && !*plain && !*asJSON {
		v.tty, v.width, v.height = true, w, h
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	err = c.follow(ctx, cl, v, *untilIdle)
	v.finish()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		if *untilIdle && len(v.active) > 0 {
			fmt.Fprintf(c.stderr, "rackboot watch: timed out after %s; still installing: %s\n", *timeout, strings.Join(v.names(), ", "))
			return 1
		}
	case err != nil:
		return c.fail("watch", err)
	}
	if *untilIdle && v.failures > 0 {
		return 1
	}
	return 0
}

// reconnectDelay is the longest wait between two attempts to reach a
// daemon that went away.
const reconnectDelay = 10 * time.Second

// follow feeds v from the event stream until ctx ends or, with untilIdle,
// the fleet is idle. A stream that breaks is opened again; the first must
// open, so that a wrong --server or token fails at once.
func (c *cli) follow(ctx context.Context, cl *adminClient, v *watchView, untilIdle bool) error {
	connected := false
	delay := time.Second
	for {
		ok, err := c.followOnce(ctx, cl, v, untilIdle)
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		var ae *apiError
		if errors.As(err, &ae) || !(ok || connected) {
			return err // a refusal, or a daemon never reached
		}
		if ok {
			connected, delay = true, time.Second
		}
		v.notice(fmt.Sprintf("lost the event stream (%v); reconnecting in %s", err, delay))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, reconnectDelay)
	}
}

// followOnce reads one connection's events. It returns nil when untilIdle
// is satisfied, otherwise the error that ended the stream, and whether the
// stream was open.
func (c *cli) followOnce(ctx context.Context, cl *adminClient, v *watchView, untilIdle bool) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the stream, which ends the reader
	// Subscribe before reading the hosts, so that no change falls
	// between the two.
	body, err := cl.open(ctx, "/api/events")
	if err != nil {
		return false, err
	}
	defer body.Close()
	resync := func() error {
		hs, _, err := cl.hosts(ctx, url.Values{"state": {"installing"}})
		if err == nil {
			v.snapshot(hs)
		}
		return err
	}
	if err := resync(); err != nil {
		return false, err
	}
	events := make(chan sseEvent)
	ended := make(chan error, 1)
	go func() {
		r := newSSEReader(body)
		for {
			ev, err := r.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("the daemon closed the stream")
				}
				ended <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if untilIdle && v.idle() {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-ended:
			return true, err
		case <-tick.C:
			v.redraw()
		case ev := <-events:
			if ev.Type == "dropped" {
				// Events were lost: read the truth again.
				if err := resync(); err != nil {
					return true, err
				}
				continue
			}
			v.handle(ev)
		}
	}
}
