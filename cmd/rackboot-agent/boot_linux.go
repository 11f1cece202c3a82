package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rackboot/rackboot/agentapi"
)

// failureDelay leaves a failure on the screen long enough to be read
// before the reboot.
const failureDelay = 10 * time.Second

// defaultPath is where the programs the agent runs (mkfs.xfs, which
// `rackboot initrd --tools` puts in the archive under its path on the
// build host) are looked up: the kernel starts init without PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// boot runs the installer as PID 1, from mounting /proc to the final
// report, and returns what to do next: cfg.After once the appliance
// accepted the install, a reboot after anything else (the next network
// boot retries). A panic is recovered, reported like any failure, and
// rebooted.
func boot(con *console, consoleErr error) (after string) {
	ctx := context.Background()
	log := newLogger(con, slog.LevelInfo)
	var a *agent
	netUp := false // only then can a failure be reported
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		err := fmt.Errorf("agent crashed: %v", r)
		log.Error("panic", "err", err, "stack", string(debug.Stack()))
		phase := agentapi.PhaseBoot
		if a != nil {
			phase = a.progress.Phase()
		}
		if netUp {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			a.reportFailed(rctx, phase, err)
			cancel()
		}
		showFailure(con, phase, err)
		after = agentapi.AfterReboot
	}()

	log.Info("rackboot-agent starting", "phase", agentapi.PhaseBoot)
	if consoleErr != nil {
		log.Warn("console incomplete", "err", consoleErr)
	}
	if err := mountSystem(); err != nil {
		log.Warn("mounts incomplete", "err", err)
	}
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", defaultPath)
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fail(con, agentapi.PhaseBoot, fmt.Errorf("reading the kernel command line: %w", err))
	}
	cmdline := strings.TrimSpace(string(raw))
	log.Info("kernel command line", "cmdline", redactCmdline(cmdline))
	cfg, err := parseCmdline(cmdline)
	if err != nil {
		return fail(con, agentapi.PhaseBoot, err)
	}

	roots, err := loadCA(cfg.Servers, caFile)
	if err != nil {
		return fail(con, agentapi.PhaseBoot, err)
	}
	api := newClient(cfg, roots, log)
	a = newAgent(con, log, api)

	rng := make(chan error, 1)
	go func() {
		d, err := seedRandom()
		if err == nil {
			log.Info("random number generator ready", "took", d.Round(time.Millisecond))
		}
		rng <- err
	}()

	a.setPhase(agentapi.PhaseModules)
	if _, err := loadModules(log, kernelLoader{}, moduleList, moduleDir); err != nil {
		log.Warn("modules", "phase", agentapi.PhaseModules, "err", err)
	}
	if a.efi, err = mountEFIVars(); err != nil {
		log.Warn("no UEFI variables", "err", err)
	}
	a.setPhase(agentapi.PhaseNetwork)
	select {
	case err := <-rng:
		if err != nil {
			log.Warn("random number generator", "err", err)
		}
	case <-time.After(entropyWait):
		// DHCP transaction IDs need no secrecy: let the DHCP library read
		// /dev/urandom, which never blocks (u-root's uio/rand switch).
		log.Warn("random number generator not ready, using /dev/urandom for DHCP", "waited", entropyWait)
		os.Setenv("UROOT_NOHWRNG", "1")
	}
	link, err := bringUpNetwork(ctx, log, cfg.MAC)
	if err != nil {
		// Nothing can reach the appliance: the console is all there is.
		return fail(con, agentapi.PhaseNetwork, err)
	}
	netUp = true

	rctx, stop := context.WithCancel(ctx)
	go link.keep(rctx, log)
	go a.ship.run(rctx, reportInterval)
	go a.progress.run(rctx, reportInterval)
	out, err := a.attempt(ctx)
	stop()
	switch {
	case err != nil:
		return fail(con, a.progress.Phase(), err)
	case !out.Done:
		return fail(con, agentapi.PhaseReport, fmt.Errorf("the appliance did not accept the install: state %s: %s", out.State, out.Reason))
	}
	con.Printf("%s", strings.Repeat("=", 64))
	con.Printf("rackboot-agent: install done and verified; appliance state %s; %s now", out.State, cfg.After)
	con.Printf("%s", strings.Repeat("=", 64))
	return cfg.After
}

// fail shows err and waits failureDelay; the caller reboots.
func fail(con *console, phase agentapi.Phase, err error) string {
	showFailure(con, phase, err)
	return agentapi.AfterReboot
}

func showFailure(con *console, phase agentapi.Phase, err error) {
	con.Printf("%s", strings.Repeat("=", 64))
	con.Printf("rackboot-agent: INSTALL FAILED (phase %s)", phase)
	for _, line := range strings.Split(err.Error(), "\n") {
		con.Printf("  %s", line)
	}
	con.Printf("rebooting in %v; the next network boot retries", failureDelay)
	con.Printf("%s", strings.Repeat("=", 64))
	time.Sleep(failureDelay)
}
