package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
)

// Limits of the live view.
const (
	// watchGrace is how long `rackboot watch` may take to see the fleet
	// idle once the last attempt ended; its last lines are printed by
	// then, since the agent reboots only after its final report.
	watchGrace = 5 * time.Second
	// watchRestarts caps how often a watch that quit is started again.
	watchRestarts = 5
)

// followInstalls shows the installs live with `rackboot watch
// --until-idle`, run in the lab's client namespace with its output
// straight on out (on a terminal it draws live progress bars), and
// returns once every machine's install attempt has ended: the agent
// rebooted it, which ends its QEMU. A watch that goes idle while a
// machine is still on its way (it finished before another began) is
// started again; one still running after the last attempt is stopped.
func followInstalls(ctx context.Context, n *lab.Net, rb *lab.Rackboot, ms []*machine, timeout time.Duration, out io.Writer) {
	ended := make(chan *machine)
	for _, m := range ms {
		go func() {
			m.installEnd, m.installed, m.err = rack.WaitInstall(ctx, m.install, timeout)
			if m.err == nil && !m.installed {
				m.err = fmt.Errorf("the install failed: %s", m.installEnd.Line.Text)
			}
			m.err = interrupted(ctx, m.err)
			ended <- m
		}()
	}
	w, err := startWatch(n, rb, out)
	if err != nil {
		fmt.Fprintf(out, "demo: %v\n", err)
	}
	restarts := 0
	for pending := len(ms); pending > 0; {
		var quit <-chan struct{}
		if w != nil {
			quit = w.Done()
		}
		select {
		case <-ended:
			pending--
		case <-quit:
			w = nil
			if restarts++; restarts > watchRestarts {
				fmt.Fprintln(out, "demo: rackboot watch keeps quitting; waiting for the machines without it")
				continue
			}
			if w, err = startWatch(n, rb, out); err != nil {
				fmt.Fprintf(out, "demo: %v\n", err)
			}
		}
	}
	if w == nil {
		return
	}
	select {
	case <-w.Done():
	case <-ctx.Done():
		w.Stop()
	case <-time.After(watchGrace):
		w.Stop()
	}
}

// startWatch starts `rackboot watch --until-idle` with its output on out.
// When out is the demo's terminal, watch gets it as its own and draws
// progress bars; otherwise it prints plain lines.
func startWatch(n *lab.Net, rb *lab.Rackboot, out io.Writer) (*lab.Process, error) {
	cmd := rb.Command(n.Cli, "watch", "--until-idle")
	cmd.Stdout, cmd.Stderr = out, out
	p, err := n.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("rackboot watch: %w", err)
	}
	return p, nil
}
