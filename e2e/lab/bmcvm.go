package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// BMCVMConfig describes a BMC-driven machine. Zero values mean the
// defaults named on each field, as in VMConfig.
type BMCVMConfig struct {
	Name     string           // names the machine's files in Dir; "vm" when empty
	Dir      string           // required: the state directory (created), logs, disk, NVRAM
	Firmware Firmware         // BIOS when zero
	MAC      net.HardwareAddr // required
	NIC      string           // QEMU NIC model, "virtio-net-pci" when empty
	ROM      NICROM           // as VMConfig.ROM
	// Disk is a raw image attached as a virtio disk (bootindex=2); none
	// when empty. DiskSize, when positive, creates it sparse (Disk then
	// defaults to Dir/NAME.img).
	Disk     string
	DiskSize int64
	// Vars is the UEFI variable store, kept across power cycles as on real
	// hardware: copied from OVMFVars when missing; Dir/NAME.vars.fd when
	// empty. Ignored under BIOS.
	Vars      string
	MemoryMiB int      // 1024 when zero
	Accel     string   // "tcg" when empty
	Extra     []string // more QEMU arguments
}

// BMCVM is a QEMU machine whose power is driven from outside, as a BMC
// drives a server: it starts off, and PowerOn, PowerOff, Reset and IsOn
// operate it (the method set of powertest.Machine, so a Redfish double can
// drive it), as does ipmi_sim through ChassisMain once StartIPMISim
// attached one. Its state lives in its directory (see bmcMachine), so
// both work on the same machine.
//
// Its serial console is one timeline across every power-on: QEMU connects
// its serial port to a unix socket this process listens on, and each
// power-on's output is appended to the same lines, timed from NewBMCVM.
// Lines the lab adds itself start with "[lab] ".
type BMCVM struct {
	cfg   BMCVMConfig
	net   *Net
	m     *bmcMachine
	tap   string
	start time.Time
	con   *console

	ln       net.Listener
	conDone  chan struct{}
	serial   string
	sockDir  string     // a short directory for the sockets, when Dir is too long
	mu       sync.Mutex // serialises power operations of this process
	conMu    sync.Mutex
	logMu    sync.Mutex
	logw     *os.File // the serial log
	cur      net.Conn // the running QEMU's console connection
	closeMu  sync.Once
	closeErr error
}

// NewBMCVM creates the machine, powered off: its tap in the server
// namespace, its state directory, its console listener. Nothing boots
// until PowerOn (or a BMC's power on).
func (n *Net) NewBMCVM(ctx context.Context, cfg BMCVMConfig) (*BMCVM, error) {
	if cfg.Dir == "" || len(cfg.MAC) == 0 {
		return nil, errors.New("lab: BMCVMConfig needs Dir and MAC")
	}
	machineDefaults(&cfg.Name, &cfg.NIC, &cfg.MemoryMiB, &cfg.Accel)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := machineDisk(&cfg.Disk, cfg.Dir, cfg.Name, cfg.DiskSize); err != nil {
		return nil, err
	}
	v := &BMCVM{cfg: cfg, net: n, conDone: make(chan struct{}),
		serial: filepath.Join(cfg.Dir, cfg.Name+".serial.log")}
	// A unix socket's path has at most 107 bytes: test directories can be
	// longer.
	sockDir := cfg.Dir
	if len(sockDir) > 70 {
		d, err := os.MkdirTemp("", "rbbmc-")
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		sockDir, v.sockDir = d, d
	}
	consoleSock := filepath.Join(sockDir, cfg.Name+".console.sock")
	_ = os.Remove(consoleSock)
	ln, err := net.Listen("unix", consoleSock)
	if err != nil {
		v.removeSockDir()
		return nil, fmt.Errorf("lab: console: %w", err)
	}
	v.ln = ln
	tap, err := n.AddTap(ctx)
	if err != nil {
		ln.Close()
		v.removeSockDir()
		return nil, err
	}
	v.tap = tap
	v.m = &bmcMachine{Name: cfg.Name, Dir: cfg.Dir, NS: n.Srv,
		QMP: filepath.Join(sockDir, cfg.Name+".qmp.sock")}
	if err := v.buildArgs(consoleSock); err != nil {
		return nil, errors.Join(err, v.Close())
	}
	if err := v.m.save(); err != nil {
		return nil, errors.Join(err, v.Close())
	}
	if v.logw, err = os.Create(v.serial); err != nil {
		return nil, errors.Join(fmt.Errorf("lab: %w", err), v.Close())
	}
	v.start = time.Now()
	v.con = newConsole(v.start, time.Now)
	go v.serveConsole()
	return v, nil
}

func (v *BMCVM) buildArgs(consoleSock string) error {
	cfg := v.cfg
	nic := fmt.Sprintf("%s,id=nic0,netdev=n0,mac=%s", cfg.NIC, cfg.MAC)
	if cfg.ROM == ROMNone || cfg.ROM == ROMDefault && cfg.Firmware == UEFI {
		nic += ",romfile="
	}
	v.m.NIC = nic
	args := []string{
		"-name", cfg.Name,
		"-accel", cfg.Accel, "-machine", "q35", "-m", fmt.Sprint(cfg.MemoryMiB), "-smp", "1",
		// -nographic, or SeaBIOS and iPXE print nothing on the serial
		// port. The serial port connects to this process's console
		// socket; without reconnect= QEMU connects before the guest
		// starts, so no early output is lost. No -no-reboot: a reboot
		// stays within the power-on.
		"-nographic", "-monitor", "none",
		"-chardev", "socket,id=con0,path=" + consoleSock,
		"-serial", "chardev:con0",
		"-qmp", "unix:" + v.m.QMP + ",server=on,wait=off",
		"-netdev", fmt.Sprintf("tap,id=n0,ifname=%s,script=no,downscript=no", v.tap),
		// Only what has a bootindex boots: the disk, and the NIC in a
		// network power-on.
		"-boot", "strict=on",
	}
	switch cfg.Firmware {
	case BIOS:
	case UEFI:
		vars := cfg.Vars
		if vars == "" {
			vars = filepath.Join(cfg.Dir, cfg.Name+".vars.fd")
		}
		if _, err := os.Stat(vars); errors.Is(err, fs.ErrNotExist) {
			if err := copyFile(OVMFVars, vars); err != nil {
				return err
			}
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	default:
		return fmt.Errorf("lab: unknown firmware %v", cfg.Firmware)
	}
	if cfg.Disk != "" {
		args = append(args,
			"-drive", "file="+cfg.Disk+",if=none,id=disk0,format=raw",
			"-device", "virtio-blk-pci,id=vdisk0,drive=disk0,bootindex=2")
	}
	v.m.Args = append(args, cfg.Extra...)
	return nil
}

// serveConsole appends every QEMU's serial output to the console, one
// power-on after the other.
func (v *BMCVM) serveConsole() {
	defer close(v.conDone)
	for {
		c, err := v.ln.Accept()
		if err != nil {
			return
		}
		v.conMu.Lock()
		v.cur = c
		v.conMu.Unlock()
		v.mark("qemu started, console connected")
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				v.record(v.con.feed(buf[:n]))
			}
			if err != nil {
				break
			}
		}
		c.Close()
		v.mark("qemu exited, console closed")
	}
}

// record appends complete console lines to the serial log.
func (v *BMCVM) record(lines []Line) {
	v.logMu.Lock()
	defer v.logMu.Unlock()
	for _, l := range lines {
		fmt.Fprintln(v.logw, l)
	}
}

// mark adds a line of the lab's own to the console, on a line of its own.
func (v *BMCVM) mark(format string, args ...any) {
	v.record(append(v.con.breakLine(), v.con.feed([]byte("[lab] "+fmt.Sprintf(format, args...)+"\n"))...))
}

// PowerOn powers the machine on; netboot makes this power-on boot from
// the network first (once: the installer's reboot then boots the disk). A
// machine that is on already is left as it is.
func (v *BMCVM) PowerOn(netboot bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.m.isOn() {
		v.mark("power on (netboot %v)", netboot)
	}
	_, err := v.m.on(netboot, true)
	return err
}

// PowerOff powers the machine off at once (a hard off) and returns when
// QEMU is gone.
func (v *BMCVM) PowerOff() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m.isOn() {
		v.mark("power off")
	}
	return v.m.off()
}

// Reset resets a running machine in place, or powers an off one on. With
// netboot it is an off and a network power-on (a new QEMU process; see
// bmcMachine.reset for why), the console going on across it.
func (v *BMCVM) Reset(netboot bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mark("reset (netboot %v)", netboot)
	return v.m.reset(netboot, true)
}

// IsOn reports whether QEMU runs.
func (v *BMCVM) IsOn() bool { return v.m.isOn() }

// Name returns the machine's name.
func (v *BMCVM) Name() string { return v.cfg.Name }

// MAC returns the NIC's address.
func (v *BMCVM) MAC() net.HardwareAddr { return v.cfg.MAC }

// Dir returns the state directory (what ChassisMain is given).
func (v *BMCVM) Dir() string { return v.cfg.Dir }

// Disk returns the disk image's path.
func (v *BMCVM) Disk() string { return v.cfg.Disk }

// Config returns the configuration, defaults applied.
func (v *BMCVM) Config() BMCVMConfig { return v.cfg }

// Args returns QEMU's command line of a power-on.
func (v *BMCVM) Args(netboot bool) []string {
	return append([]string{"qemu-system-x86_64"}, v.m.qemuArgs(netboot)...)
}

// Started returns when the machine was created: every Line.At counts
// from it.
func (v *BMCVM) Started() time.Time { return v.start }

// SerialLog returns the path of the console log (every power-on).
func (v *BMCVM) SerialLog() string { return v.serial }

// QEMULog returns the path of QEMU's own output and command lines.
func (v *BMCVM) QEMULog() string { return filepath.Join(v.cfg.Dir, v.cfg.Name+".qemu.log") }

// Lines returns the console so far, every power-on.
func (v *BMCVM) Lines() []Line { return v.con.all() }

// Tail returns the last n console lines as text.
func (v *BMCVM) Tail(n int) string { return v.con.tail(n) }

// Find returns the first console line matching pattern.
func (v *BMCVM) Find(pattern string) (Line, bool, error) { return v.con.findPattern(pattern) }

// WaitFor waits until a complete console line matching pattern appears at
// or after since (a time on the console's axis, 0 for any) and returns
// it. Unlike VM.WaitFor a machine that is off does not end the wait: a
// BMC may power it on.
func (v *BMCVM) WaitFor(ctx context.Context, pattern string, since, timeout time.Duration) (Line, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return Line{}, fmt.Errorf("lab: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		lines, _, changed, _ := v.con.snapshot()
		for _, l := range lines {
			if l.At >= since && re.MatchString(l.Text) {
				return l, nil
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			return Line{}, fmt.Errorf("lab: %s: /%s/ did not appear within %v", v.cfg.Name, pattern, timeout)
		case <-ctx.Done():
			return Line{}, fmt.Errorf("lab: %s: waiting for /%s/: %w", v.cfg.Name, pattern, ctx.Err())
		}
	}
}

// Now returns the current time on the console's axis, for WaitFor's since.
func (v *BMCVM) Now() time.Duration { return time.Since(v.start) }

// WaitOff waits until the machine is off (the guest powered off, or a
// BMC), polling.
func (v *BMCVM) WaitOff(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for v.IsOn() {
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s still on after %v", v.cfg.Name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// Close powers the machine off, stops its console and removes its tap.
// The logs, disk and state directory stay. It is idempotent.
func (v *BMCVM) Close() error {
	v.closeMu.Do(func() {
		var errs []error
		if v.m != nil {
			errs = append(errs, v.m.off())
		}
		if v.ln != nil {
			v.ln.Close()
			v.conMu.Lock()
			if v.cur != nil {
				v.cur.Close()
			}
			v.conMu.Unlock()
			if v.con != nil {
				<-v.conDone
			}
		}
		if v.tap != "" {
			if err := v.net.RemoveTap(v.tap); err != nil && namespaceExists(v.net.Srv) {
				errs = append(errs, err)
			}
		}
		v.removeSockDir()
		if v.logw != nil {
			v.logMu.Lock()
			v.logw.Close()
			v.logMu.Unlock()
		}
		v.closeErr = errors.Join(errs...)
	})
	return v.closeErr
}

func (v *BMCVM) removeSockDir() {
	if v.sockDir != "" {
		_ = os.RemoveAll(v.sockDir)
	}
}

var _ io.Closer = (*BMCVM)(nil)

// breakLine ends a line left unterminated by a QEMU that exited, so that
// the next power-on's output starts a line of its own.
func (c *console) breakLine() []Line {
	c.mu.Lock()
	pending := len(c.partial) > 0
	c.mu.Unlock()
	if !pending {
		return nil
	}
	return c.feed([]byte("\n"))
}
