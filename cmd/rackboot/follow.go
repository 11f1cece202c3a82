package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

// followPoll is how often followInstalls reads the hosts.
const followPoll = 2 * time.Second

// followInstalls prints the installs of macs as they go (installing, each failed
// attempt, installed, failed) until every one is installed or failed, or
// timeout passes; it returns 0 when all installed. Lines go to stdout,
// or to stderr under --json, whose stdout is the API's answer.
func (c *cli) followInstalls(ctx context.Context, cl *adminClient, macs []string, timeout time.Duration, asJSON bool) int {
	out := c.stdout
	if asJSON {
		out = c.stderr
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type seen struct {
		state    registry.State
		attempt  int
		lastErr  string
		finished bool
	}
	last := map[string]*seen{}
	for _, m := range macs {
		last[m] = &seen{state: registry.StatePending}
	}
	fmt.Fprintf(out, "following %s (^C stops following, not the installs)\n", machineCount(len(macs)))
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		hs, _, err := cl.hosts(ctx, nil)
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(c.stderr, "rackboot reinstall: reading the hosts: %v (trying again)\n", err)
		}
		done, installed := 0, 0
		for _, h := range hs {
			s, ok := last[h.MAC]
			if !ok {
				continue
			}
			if !s.finished {
				c.followLine(out, h, s.state, s.attempt, s.lastErr)
				s.state, s.attempt, s.lastErr = h.State, h.Attempt, h.LastError
				s.finished = h.State == registry.StateInstalled || h.State == registry.StateFailed
			}
		}
		for _, s := range last {
			if s.finished {
				done++
				if s.state == registry.StateInstalled {
					installed++
				}
			}
		}
		if done == len(macs) {
			fmt.Fprintf(out, "%d of %d installed\n", installed, len(macs))
			if installed == len(macs) {
				return 0
			}
			return 1
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				fmt.Fprintf(c.stderr, "rackboot reinstall: %d of %d machines not done after %s; they go on installing (rackboot watch)\n", len(macs)-done, len(macs), timeout)
			}
			return 1
		case <-t.C:
		}
	}
}

// followLine prints what changed of h since state, attempt and lastErr.
func (c *cli) followLine(out io.Writer, h api.HostView, state registry.State, attempt int, lastErr string) {
	name := h.Hostname
	if name == "" {
		name = h.MAC
	}
	at := c.now().In(c.loc).Format("15:04:05")
	if h.LastError != "" && h.LastError != lastErr {
		fmt.Fprintf(out, "%s %s attempt %d failed: %s\n", at, name, h.Attempt, oneLine(h.LastError))
	}
	switch {
	case h.State == state && h.Attempt == attempt:
	case h.State == registry.StateInstalling:
		fmt.Fprintf(out, "%s %s installing (attempt %d)\n", at, name, h.Attempt)
	case h.State == registry.StateInstalled:
		fmt.Fprintf(out, "%s %s installed %s\n", at, name, versionString(h.Version))
	case h.State == registry.StateFailed:
		fmt.Fprintf(out, "%s %s failed: %s\n", at, name, oneLine(h.Reason))
	}
}
