package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// AgentMachine is a machine without QEMU whose firmware is Go code, for
// tests of whole fleets (power control, staged rollouts) on a host that
// cannot boot dozens of virtual machines. Its method set is that of
// powertest.Machine, so a BMC test double can drive it:
//
//   - PowerOn(true), a power-on with a one-time network boot: it fetches
//     its iPXE script from rackboot as iPXE would (GET /ipxe?mac=…); when
//     the script boots the installer (it carries rackboot.token=), it runs
//     the real `rackboot-agent -disk FILE rackboot.…` (see
//     cmd/rackboot-agent/local_linux.go) against its disk file, and when
//     the agent exits 0 it reboots into its disk. When the agent fails the
//     machine stays on, idle, as an installer that reported its failure.
//     A script without a token (installed, held) makes it boot its disk.
//   - PowerOn(false) boots the disk; it never asks rackboot.
//   - PowerOff cuts the power: a running agent is killed (SIGKILL).
//   - Reset is PowerOff then PowerOn, with the same netboot rule.
//
// Every step is a MachineEvent with its time (Events, WaitFor), so tests can
// assert the order and spacing of power actions and boots.
//
// The script and the agent's requests come from the server namespace, from
// rackboot's own address (ServerIP): rackboot must believe them by the MAC
// they name, which AgentMachineServeArgs asks of it. The agents of several
// machines share that namespace, so peer distribution must be off (serve's
// default): they cannot all serve peers on one port.
//
// The methods are safe for concurrent use. A power action returns once the
// power is switched; the boot goes on in the background, as on hardware.
type AgentMachine struct {
	cfg  AgentMachineConfig
	disk string

	mu      sync.Mutex
	on      bool
	boot    *bootRun // the running boot, nil when off
	runs    int      // power-ons so far, naming the agent logs
	events  []MachineEvent
	changed chan struct{} // closed and replaced at every event
}

// AgentMachineConfig configures NewAgentMachine. Name, MAC, Rackboot,
// Agent and Dir are required.
type AgentMachineConfig struct {
	Name string           // the machine's files in Dir start with it
	MAC  net.HardwareAddr // a host of rackboot's fleet
	// Rackboot is the appliance the machine boots from: its HTTP URL for
	// the script and its data directory's CA for the agent's HTTPS.
	Rackboot *Rackboot
	Agent    string // the rackboot-agent binary
	// Dir receives the disk (NAME.disk.img) and the agents' logs
	// (NAME-agent-N.log, one per install attempt).
	Dir string
	// DiskSize is the size of the disk file, a sparse file; 1 GiB when
	// zero. It must pass the min_size of the host's layout.
	DiskSize int64
	// NS is the namespace the machine's requests come from: the Net's
	// server namespace when empty.
	NS string
}

// AgentMachineServeArgs are the flags rackboot serve needs to believe an
// AgentMachine: its requests come from ServerIP (the server namespace
// talking to itself), not from the machine the MAC names.
var AgentMachineServeArgs = []string{"--trust-routed", ServerIP + "/32"}

// EventKind names a step of an AgentMachine's life.
type EventKind string

// The events an AgentMachine records.
const (
	EventPowerOn     EventKind = "power-on"      // Detail: "netboot" or "disk"
	EventPowerOff    EventKind = "power-off"     // Detail: what was cut short, if anything
	EventReset       EventKind = "reset"         // Detail: "netboot" or "disk"
	EventScript      EventKind = "script"        // Detail: the script's first echo
	EventScriptError EventKind = "script-failed" // Detail: the error; the machine stays on, idle
	EventAgentStart  EventKind = "agent-start"   // Detail: the agent's log file
	EventAgentDone   EventKind = "agent-done"    // the agent exited 0: the install is done
	EventAgentFailed EventKind = "agent-failed"  // Detail: exit status and the log's last line; on, idle
	EventBootDisk    EventKind = "boot-disk"     // Detail: "image" or "blank disk"
	EventIgnored     EventKind = "ignored"       // Detail: the power action that changed nothing
)

// MachineEvent is one step of an AgentMachine, at the time it happened.
type MachineEvent struct {
	At     time.Time
	Kind   EventKind
	Detail string
}

func (e MachineEvent) String() string {
	s := e.At.UTC().Format("15:04:05.000") + " " + string(e.Kind)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// bootRun is one power-on's boot, running until the power goes off.
type bootRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// scriptTimeout bounds the fetch of the iPXE script, as iPXE's own HTTP
// timeout does.
const scriptTimeout = 30 * time.Second

// NewAgentMachine makes the machine, powered off, with a new blank disk.
func NewAgentMachine(cfg AgentMachineConfig) (*AgentMachine, error) {
	if cfg.Name == "" || len(cfg.MAC) != 6 || cfg.Rackboot == nil || cfg.Agent == "" || cfg.Dir == "" {
		return nil, errors.New("lab: AgentMachineConfig needs Name, MAC, Rackboot, Agent and Dir")
	}
	if cfg.DiskSize == 0 {
		cfg.DiskSize = 1 << 30
	}
	if cfg.NS == "" {
		cfg.NS = cfg.Rackboot.net.Srv
	}
	m := &AgentMachine{cfg: cfg, disk: filepath.Join(cfg.Dir, cfg.Name+".disk.img"), changed: make(chan struct{})}
	if err := m.NewDisk(); err != nil {
		return nil, err
	}
	return m, nil
}

// Name is the machine's name.
func (m *AgentMachine) Name() string { return m.cfg.Name }

// MAC is the machine's MAC address.
func (m *AgentMachine) MAC() net.HardwareAddr { return m.cfg.MAC }

// Disk is the path of the machine's disk file.
func (m *AgentMachine) Disk() string { return m.disk }

// NewDisk replaces the disk with a blank one, as a new server's. The
// machine should be off.
func (m *AgentMachine) NewDisk() error {
	if err := os.Remove(m.disk); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab: %w", err)
	}
	f, err := os.Create(m.disk)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := f.Truncate(m.cfg.DiskSize); err != nil {
		f.Close()
		return fmt.Errorf("lab: %w", err)
	}
	return f.Close()
}

// IsOn reports whether the machine's power is on.
func (m *AgentMachine) IsOn() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on
}

// PowerOn switches the power on and starts the boot: the network's once
// with netboot, else the disk's. A machine already on stays as it is (the
// action is recorded as ignored), as a BMC's "On" of a running server.
func (m *AgentMachine) PowerOn(netboot bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.on {
		m.recordLocked(EventIgnored, "power on: already on")
		return nil
	}
	m.recordLocked(EventPowerOn, bootName(netboot))
	m.startLocked(netboot)
	return nil
}

// PowerOff cuts the power: a running agent is killed and the boot ends.
// It returns once the agent is gone. A machine already off stays off.
func (m *AgentMachine) PowerOff() error {
	m.mu.Lock()
	if !m.on {
		m.recordLocked(EventIgnored, "power off: already off")
		m.mu.Unlock()
		return nil
	}
	b := m.boot
	m.on, m.boot = false, nil
	m.mu.Unlock()
	b.cancel()
	<-b.done
	m.record(EventPowerOff, "")
	return nil
}

// Reset is a power cycle: off (a running agent killed), then on with the
// same netboot rule as PowerOn. A machine that was off is powered on.
func (m *AgentMachine) Reset(netboot bool) error {
	m.mu.Lock()
	b := m.boot
	m.on, m.boot = false, nil
	m.mu.Unlock()
	if b != nil {
		b.cancel()
		<-b.done
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recordLocked(EventReset, bootName(netboot))
	m.startLocked(netboot)
	return nil
}

func bootName(netboot bool) string {
	if netboot {
		return "netboot"
	}
	return "disk"
}

// startLocked powers the machine on and starts its boot.
func (m *AgentMachine) startLocked(netboot bool) {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bootRun{cancel: cancel, done: make(chan struct{})}
	m.on, m.boot = true, b
	m.runs++
	run := m.runs
	go func() {
		defer close(b.done)
		if netboot {
			m.netboot(ctx, run)
			return
		}
		m.bootDisk()
	}()
}

// netboot is the firmware's one-time network boot: the script, then the
// installer's agent or the disk.
func (m *AgentMachine) netboot(ctx context.Context, run int) {
	words, first, err := m.script(ctx)
	if ctx.Err() != nil {
		return // the power went off
	}
	if err != nil {
		m.record(EventScriptError, err.Error())
		return
	}
	m.record(EventScript, first)
	if !hasWord(words, "rackboot.token=") {
		// No installer: iPXE's "exit" or sanboot, the disk boots.
		m.bootDisk()
		return
	}
	logName := filepath.Join(m.cfg.Dir, fmt.Sprintf("%s-agent-%d.log", m.cfg.Name, run))
	err = m.runAgent(ctx, words, logName)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		m.record(EventAgentFailed, fmt.Sprintf("%v: %s", err, lastLogLine(logName)))
		return
	}
	m.record(EventAgentDone, "")
	// The installer reboots; the one-time network boot is spent.
	m.bootDisk()
}

// installerWords finds the installer's rackboot.* parameters on the
// script's kernel line. rackboot.server= may list several appliances,
// comma-separated, the serving one first: the agent gets the whole list
// and fails over along it, as the installer does.
var installerWords = regexp.MustCompile(`rackboot\.[a-z_]+=[^\s|]+`)

// script fetches the machine's iPXE script as iPXE would, and returns the
// rackboot.* words of its kernel line and its first echo line.
func (m *AgentMachine) script(ctx context.Context) (words []string, first string, err error) {
	ctx, cancel := context.WithTimeout(ctx, scriptTimeout)
	defer cancel()
	url := m.cfg.Rackboot.URL() + "/ipxe?mac=" + strings.ReplaceAll(m.cfg.MAC.String(), ":", "-") + "&arch=x86_64&platform=pcbios"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("lab: %w", err)
	}
	resp, err := m.cfg.Rackboot.net.HTTPClient(m.cfg.NS).Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("lab: script: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", fmt.Errorf("lab: script: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("lab: script: GET %s: %s: %.200s", url, resp.Status, body)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "echo "); ok && first == "" {
			first = rest
		}
		if strings.HasPrefix(strings.TrimSpace(l), "kernel ") {
			words = installerWords.FindAllString(l, -1)
		}
	}
	return words, first, nil
}

func hasWord(words []string, prefix string) bool {
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			return true
		}
	}
	return false
}

// runAgent runs one install attempt of rackboot-agent against the disk,
// its output in logName, until it exits or ctx ends (the power cut:
// SIGKILL).
func (m *AgentMachine) runAgent(ctx context.Context, words []string, logName string) error {
	logf, err := os.Create(logName)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer logf.Close()
	ca := filepath.Join(m.cfg.Rackboot.cfg.Data, "tls", "ca.pem")
	args := append([]string{"-disk", m.disk, "-ca", ca}, words...)
	cmd := m.cfg.Rackboot.net.Command(m.cfg.NS, m.cfg.Agent, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := m.cfg.Rackboot.net.Start(cmd)
	if err != nil {
		return err
	}
	m.record(EventAgentStart, logName)
	select {
	case <-p.Done():
		return p.Err()
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	}
}

// bootDisk boots the disk: the machine records whether it holds an image
// (its first MiB, the partition table, is not all zeros) and stays on.
func (m *AgentMachine) bootDisk() {
	detail := "blank disk"
	if ok, err := m.DiskHasData(); err != nil {
		detail = err.Error()
	} else if ok {
		detail = "image"
	}
	m.record(EventBootDisk, detail)
}

// DiskHasData reports whether the first MiB of the disk, where an
// installed image's partition table is, holds anything but zeros.
func (m *AgentMachine) DiskHasData() (bool, error) {
	f, err := os.Open(m.disk)
	if err != nil {
		return false, fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	b := make([]byte, 1<<20)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false, fmt.Errorf("lab: %w", err)
	}
	return len(bytes.Trim(b[:n], "\x00")) > 0, nil
}

// lastLogLine is the last line of an agent's log, for events.
func lastLogLine(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return lines[len(lines)-1]
}

func (m *AgentMachine) record(kind EventKind, detail string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recordLocked(kind, detail)
}

func (m *AgentMachine) recordLocked(kind EventKind, detail string) {
	m.events = append(m.events, MachineEvent{At: time.Now(), Kind: kind, Detail: detail})
	close(m.changed)
	m.changed = make(chan struct{})
}

// Events returns a copy of everything the machine recorded, oldest first.
func (m *AgentMachine) Events() []MachineEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]MachineEvent(nil), m.events...)
}

// WaitFor waits until the machine records an event of one of kinds at or
// after since, and returns the first such event.
func (m *AgentMachine) WaitFor(ctx context.Context, since time.Time, kinds ...EventKind) (MachineEvent, error) {
	for {
		m.mu.Lock()
		for _, e := range m.events {
			if e.At.Before(since) {
				continue
			}
			for _, k := range kinds {
				if e.Kind == k {
					m.mu.Unlock()
					return e, nil
				}
			}
		}
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return MachineEvent{}, fmt.Errorf("lab: %s: no %v since %s: %w; events:\n%s",
				m.cfg.Name, kinds, since.UTC().Format("15:04:05.000"), ctx.Err(), FormatEvents(m.Events()))
		}
	}
}

// FormatEvents lists events one per line, for logs and failures.
func FormatEvents(events []MachineEvent) string {
	var b strings.Builder
	for _, e := range events {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}

// Close powers the machine off if it is on, killing a running agent.
func (m *AgentMachine) Close() error {
	if !m.IsOn() {
		return nil
	}
	return m.PowerOff()
}
