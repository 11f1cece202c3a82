//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/registry"
)

// agentInstallTimeout bounds one AgentMachine's install of the agent
// lab's image, script to boot from disk: a few seconds alone, more on a
// loaded host.
const agentInstallTimeout = 3 * time.Minute

// TestAgentMachineLab checks the lab's AgentMachine against a real
// rackboot, without BMCs: a new host (pending) powered on with a one-time
// network boot installs through the real rackboot-agent and boots its
// disk, and the registry says installed; a power-on without network boot
// boots the disk without asking rackboot; a network boot of an installed
// host boots the disk (its script has no installer); a power cut during an
// install kills the agent, and the machine's next network boot installs.
func TestAgentMachineLab(t *testing.T) {
	ctx := testContext(t)
	mac := agentMAC(0, 1)
	hosts := []string{`mac: "` + mac.String() + `", hostname: lab-m1`}
	for i := range agentLabFleet {
		hosts = append(hosts, fmt.Sprintf("mac: %q, hostname: lab-f%d", agentMAC(3, byte(i)).String(), i))
	}
	l := startAgentLab(t, ctx, agentLabConfig{versions: []string{"lab-1"}, hosts: hosts})
	m := l.machine(t, "m1", mac)

	t.Run("install", func(t *testing.T) {
		if hv := l.hostView(t, mac.String()); hv.State != registry.StatePending {
			t.Fatalf("new host %s is %s, want pending", mac, hv.State)
		}
		t0 := time.Now()
		if err := m.PowerOn(true); err != nil {
			t.Fatal(err)
		}
		if !m.IsOn() {
			t.Error("IsOn is false after PowerOn")
		}
		e := waitBoot(t, ctx, m, t0)
		t.Logf("installed and booted from disk %.1f s after power-on:\n%s", e.At.Sub(t0).Seconds(), lab.FormatEvents(m.Events()))
		wantKinds(t, m.Events(), t0, lab.EventPowerOn, lab.EventScript, lab.EventAgentStart, lab.EventAgentDone, lab.EventBootDisk)
		if e.Detail != "image" {
			t.Errorf("booted a %s, want the image", e.Detail)
		}
		if !l.diskHolds(t, m, "lab-1") {
			t.Errorf("the disk does not hold lab-1's image")
		}
		hv := l.hostView(t, mac.String())
		if hv.State != registry.StateInstalled || hv.Version.Name != "lab-1" {
			t.Errorf("registry: %s with %+v (%s), want installed with lab-1", hv.State, hv.Version, hv.Reason)
		}
		if hist := l.history(t, mac.String()); len(hist) != 1 || hist[0].Result != registry.ResultSuccess {
			t.Errorf("history: %+v, want one success", withoutLogs(hist))
		}
	})

	t.Run("reset-disk", func(t *testing.T) {
		t0 := time.Now()
		if err := m.Reset(false); err != nil {
			t.Fatal(err)
		}
		e, err := m.WaitFor(waitCtx(t, ctx, 10*time.Second), t0, lab.EventBootDisk)
		if err != nil {
			t.Fatal(err)
		}
		wantKinds(t, m.Events(), t0, lab.EventReset, lab.EventBootDisk)
		if e.Detail != "image" {
			t.Errorf("booted a %s, want the image", e.Detail)
		}
	})

	t.Run("netboot-installed", func(t *testing.T) {
		if err := m.PowerOff(); err != nil {
			t.Fatal(err)
		}
		if m.IsOn() {
			t.Error("IsOn is true after PowerOff")
		}
		t0 := time.Now()
		if err := m.PowerOn(true); err != nil {
			t.Fatal(err)
		}
		waitBoot(t, ctx, m, t0)
		// The script of an installed host boots the disk: no agent.
		wantKinds(t, m.Events(), t0, lab.EventPowerOn, lab.EventScript, lab.EventBootDisk)
		if n := len(l.history(t, mac.String())); n != 1 {
			t.Errorf("history has %d attempts after a network boot of an installed host, want 1", n)
		}
	})

	t.Run("power-cut", func(t *testing.T) {
		l.cli(t, "reinstall", mac.String(), "--reason", "e2e: the AgentMachine's power cut")
		if err := m.PowerOff(); err != nil {
			t.Fatal(err)
		}
		if err := m.NewDisk(); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := m.PowerOn(true); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitFor(waitCtx(t, ctx, agentInstallTimeout), t0, lab.EventAgentStart); err != nil {
			t.Fatal(err)
		}
		if err := m.PowerOff(); err != nil {
			t.Fatal(err)
		}
		wantKinds(t, m.Events(), t0, lab.EventPowerOn, lab.EventScript, lab.EventAgentStart, lab.EventPowerOff)
		t1 := time.Now()
		if err := m.Reset(true); err != nil {
			t.Fatal(err)
		}
		e := waitBoot(t, ctx, m, t1)
		wantKinds(t, m.Events(), t1, lab.EventReset, lab.EventScript, lab.EventAgentStart, lab.EventAgentDone, lab.EventBootDisk)
		if e.Detail != "image" {
			t.Errorf("booted a %s, want the image", e.Detail)
		}
		if hv := l.hostView(t, mac.String()); hv.State != registry.StateInstalled {
			t.Errorf("registry: %s (%s), want installed", hv.State, hv.Reason)
		}
		t.Logf("history: %s", strings.TrimSpace(l.cli(t, "history", mac.String())))
	})

	// What TestRollout's halt rests on: a chunk file overwritten with
	// garbage of its size fails the agent that fetches it (it verifies
	// every chunk's digest), the machine stays on, idle; restored, the
	// next attempt succeeds.
	t.Run("corrupt-chunk", func(t *testing.T) {
		chunks := l.newChunks["lab-1"]
		chunk := chunks[len(chunks)/2]
		good, err := os.ReadFile(chunk)
		if err != nil {
			t.Fatal(err)
		}
		garbage := make([]byte, len(good))
		for i := range garbage {
			garbage[i] = byte(i*7 + 1)
		}
		if err := os.WriteFile(chunk, garbage, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.WriteFile(chunk, good, 0o644) })
		l.cli(t, "reinstall", mac.String(), "--reason", "e2e: a corrupted chunk")
		if err := m.PowerOff(); err != nil {
			t.Fatal(err)
		}
		if err := m.NewDisk(); err != nil { // blank: every chunk is fetched
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := m.PowerOn(true); err != nil {
			t.Fatal(err)
		}
		e, err := m.WaitFor(waitCtx(t, ctx, agentInstallTimeout), t0, lab.EventAgentFailed, lab.EventBootDisk)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != lab.EventAgentFailed {
			t.Fatalf("with %s corrupted: %s, want the agent to fail", chunk, e)
		}
		t.Logf("with a chunk corrupted: %s; rackboot: %s", e, l.hostView(t, mac.String()).State)
		if !m.IsOn() {
			t.Error("the machine is off after its agent failed, want on and idle")
		}
		if err := os.WriteFile(chunk, good, 0o644); err != nil {
			t.Fatal(err)
		}
		l.cli(t, "reinstall", mac.String(), "--reason", "e2e: the chunk restored")
		t1 := time.Now()
		if err := m.Reset(true); err != nil {
			t.Fatal(err)
		}
		waitBoot(t, ctx, m, t1)
		if hv := l.hostView(t, mac.String()); hv.State != registry.StateInstalled {
			t.Errorf("registry: %s (%s), want installed", hv.State, hv.Reason)
		}
	})

	// Many machines at once, their agents side by side in the server
	// namespace, as a fleet's tests run them.
	t.Run("fleet", func(t *testing.T) {
		var ms []*lab.AgentMachine
		for i := range agentLabFleet {
			ms = append(ms, l.machine(t, fmt.Sprintf("f%d", i), agentMAC(3, byte(i))))
		}
		t0 := time.Now()
		for _, m := range ms {
			if err := m.PowerOn(true); err != nil {
				t.Fatal(err)
			}
		}
		var last time.Time
		for _, m := range ms {
			e := waitBoot(t, ctx, m, t0)
			if e.At.After(last) {
				last = e.At
			}
			if hv := l.hostView(t, m.MAC().String()); hv.State != registry.StateInstalled {
				t.Errorf("%s: %s (%s), want installed", m.Name(), hv.State, hv.Reason)
			}
			if !l.diskHolds(t, m, "lab-1") {
				t.Errorf("%s: the disk does not hold lab-1's image", m.Name())
			}
		}
		t.Logf("%d machines powered on at once: all installed and booted from disk in %.1f s", len(ms), last.Sub(t0).Seconds())
	})
}

// agentLabFleet is how many machines TestAgentMachineLab powers on at
// once.
const agentLabFleet = 10

// waitBoot waits for m's boot from disk since t0, failing the test on a
// failed install or script.
func waitBoot(t *testing.T, ctx context.Context, m *lab.AgentMachine, t0 time.Time) lab.MachineEvent {
	t.Helper()
	e, err := m.WaitFor(waitCtx(t, ctx, agentInstallTimeout), t0, lab.EventBootDisk, lab.EventAgentFailed, lab.EventScriptError)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != lab.EventBootDisk {
		t.Fatalf("%s: %s\n%s", m.Name(), e, lab.FormatEvents(m.Events()))
	}
	return e
}

// wantKinds checks the kinds of the events since t0, in order.
func wantKinds(t *testing.T, events []lab.MachineEvent, t0 time.Time, want ...lab.EventKind) {
	t.Helper()
	var got []lab.EventKind
	for _, e := range events {
		if !e.At.Before(t0) {
			got = append(got, e.Kind)
		}
	}
	if strings.Join(kindStrings(got), " ") != strings.Join(kindStrings(want), " ") {
		t.Errorf("events since %s: %v, want %v:\n%s", t0.UTC().Format("15:04:05.000"), got, want, lab.FormatEvents(events))
	}
}

func kindStrings(ks []lab.EventKind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

// waitCtx is ctx bounded by d, until the test ends.
func waitCtx(t *testing.T, ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	return c
}
