package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// httpPort is where rackboot serves scripts and artifacts in the lab.
const httpPort = "8080"

// startRackboot runs `rackboot serve` on the lab's bridge with the example
// fleet, logging JSON into the work directory, and waits until it serves.
func startRackboot(ctx context.Context, n *lab.Net, w *workDir) (*lab.Process, error) {
	logf, err := os.Create(w.serverLog())
	if err != nil {
		return nil, fmt.Errorf("rackboot log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := n.Command(n.Srv, w.binary(), "serve",
		"--profiles", w.profiles(),
		"--data", w.path("data"),
		"--artifacts", w.artifacts(),
		"--ipxe-dir", lab.IPXEDir,
		"--interface", lab.Bridge,
		"--http-port", httpPort, "--tftp-port", "69", "--dhcp-port", "67",
		// Without any router advertisement iPXE waits ~16 s for IPv6
		// autoconfiguration on each DHCP; the lab segment has no router.
		"--ipv6-ra",
		"--log-format", "json",
		// Debug also records the packets rackboot saw and did not answer:
		// the log is where to look when a machine does not boot.
		"--log-level", "debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := n.Start(cmd)
	if err != nil {
		return nil, err
	}
	if err := waitServing(ctx, p, w.serverLog(), 20*time.Second); err != nil {
		return nil, err
	}
	return p, nil
}

// waitServing waits for rackboot's "rackboot serving" line, logged once
// every socket is open.
func waitServing(ctx context.Context, p *lab.Process, logFile string, limit time.Duration) error {
	deadline := time.After(limit)
	for {
		entries, err := lab.ReadLog(logFile)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Msg == "rackboot serving" {
				return nil
			}
		}
		select {
		case <-p.Done():
			return fmt.Errorf("rackboot serve exited (%v):\n%s", p.Err(), tail(logFile, 20))
		case <-deadline:
			return fmt.Errorf("rackboot serve not serving after %v:\n%s", limit, tail(logFile, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of a file, for error messages.
func tail(name string, n int) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
