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
	"strings"
	"sync"
	"time"
)

// Firmware is the machine's boot firmware.
type Firmware int

const (
	// BIOS is SeaBIOS. It has no network stack of its own: the NIC's
	// option ROM (QEMU's iPXE) does the network boot.
	BIOS Firmware = iota
	// UEFI is OVMF (EDK2), with a fresh copy of its variable store on
	// every start: stale NVRAM boot entries change what it boots.
	UEFI
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	}
	return fmt.Sprintf("Firmware(%d)", int(f))
}

// NICROM selects the option ROM of the VM's network card.
type NICROM int

const (
	// ROMDefault is the firmware's genuine network boot: under BIOS QEMU's
	// iPXE ROM (SeaBIOS has nothing else); under UEFI no ROM, so OVMF's
	// own EDK2 PXE client boots: DHCP, port 4011, TFTP of ipxe.efi.
	ROMDefault NICROM = iota
	// ROMIPXE keeps QEMU's iPXE option ROM, under UEFI too (iPXE's EFI
	// driver then goes straight to the HTTP script).
	ROMIPXE
	// ROMNone removes the option ROM (romfile=).
	ROMNone
)

// Firmware images of Debian's ovmf package (4 MiB flash layout).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// VMConfig describes one lab machine. Zero values mean the defaults named
// on each field.
type VMConfig struct {
	Name     string           // names the VM's files in Dir; "vm" when empty
	Dir      string           // required: serial log, QEMU log, NVRAM copy, disk
	Firmware Firmware         // BIOS when zero
	MAC      net.HardwareAddr // required: the NIC's address
	// NIC is the QEMU NIC model, "virtio-net-pci" when empty. "e1000"
	// works too, but OVMF has no e1000 driver: under UEFI it needs ROMIPXE.
	NIC string
	ROM NICROM // ROMDefault when zero
	// Disk is a raw image attached as a virtio disk; no disk when empty.
	Disk string
	// DiskSize, when positive, creates a sparse Disk of this many bytes,
	// replacing an old one; Disk defaults to Dir/NAME.img then.
	DiskSize int64
	// Vars is the UEFI machine's variable store (its NVRAM). Empty means
	// Dir/NAME.vars.fd, a fresh copy of OVMFVars at every start: stale
	// boot entries change what OVMF boots. A path given here is copied
	// from OVMFVars only when missing and kept otherwise, so that what the
	// machine wrote (boot entries, BootNext) survives its power cycles, as
	// on real hardware. Ignored under BIOS.
	Vars      string
	MemoryMiB int      // 1024 when zero
	Accel     string   // "tcg" when empty: KVM is not usable in the lab
	Extra     []string // more QEMU arguments, appended
}

// VM is a running QEMU machine whose serial console is captured. Its tap
// and QEMU process belong to the Net that started it.
type VM struct {
	cfg     VMConfig
	net     *Net
	tap     string
	args    []string
	start   time.Time
	proc    *Process
	con     *console
	logDone chan struct{}
	serial  string

	closeOnce sync.Once
	closeErr  error
}

// StartVM creates a tap for the VM in the server namespace and powers the
// VM on there. Power-on is the reference time of every Line.At.
func (n *Net) StartVM(ctx context.Context, cfg VMConfig) (*VM, error) {
	if cfg.Dir == "" || len(cfg.MAC) == 0 {
		return nil, errors.New("lab: VMConfig needs Dir and MAC")
	}
	machineDefaults(&cfg.Name, &cfg.NIC, &cfg.MemoryMiB, &cfg.Accel)
	if err := machineDisk(&cfg.Disk, cfg.Dir, cfg.Name, cfg.DiskSize); err != nil {
		return nil, err
	}
	tap, err := n.AddTap(ctx)
	if err != nil {
		return nil, err
	}
	v := &VM{cfg: cfg, net: n, tap: tap, logDone: make(chan struct{}),
		serial: filepath.Join(cfg.Dir, cfg.Name+".serial.log")}
	if err := v.boot(); err != nil {
		return nil, errors.Join(err, n.RemoveTap(tap))
	}
	return v, nil
}

func (v *VM) boot() error {
	cfg := v.cfg
	nic := fmt.Sprintf("%s,netdev=n0,mac=%s,bootindex=1", cfg.NIC, cfg.MAC)
	if cfg.ROM == ROMNone || cfg.ROM == ROMDefault && cfg.Firmware == UEFI {
		nic += ",romfile="
	}
	args := []string{
		"-name", cfg.Name,
		"-accel", cfg.Accel, "-machine", "q35", "-m", fmt.Sprint(cfg.MemoryMiB), "-smp", "1",
		// -nographic with the serial port on stdio: with -display none
		// SeaBIOS and iPXE print nothing on the serial port.
		"-nographic", "-monitor", "none", "-serial", "stdio",
		// A guest that powers off or reboots ends QEMU: the test sees the
		// end of the boot instead of a second one.
		"-no-reboot",
		"-netdev", fmt.Sprintf("tap,id=n0,ifname=%s,script=no,downscript=no", v.tap),
		"-device", nic,
	}
	switch cfg.Firmware {
	case BIOS:
		args = append(args, "-boot", "n")
	case UEFI:
		vars := cfg.Vars
		if vars == "" {
			vars = filepath.Join(cfg.Dir, cfg.Name+".vars.fd")
			if err := copyFile(OVMFVars, vars); err != nil {
				return err
			}
		} else if _, err := os.Stat(vars); errors.Is(err, fs.ErrNotExist) {
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
		args = append(args, "-drive", "file="+cfg.Disk+",if=virtio,format=raw")
	}
	args = append(args, cfg.Extra...)
	v.args = append([]string{"qemu-system-x86_64"}, args...)

	serial, err := os.Create(v.serial)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	qlog, err := os.Create(filepath.Join(cfg.Dir, cfg.Name+".qemu.log"))
	if err != nil {
		serial.Close()
		return fmt.Errorf("lab: %w", err)
	}
	defer qlog.Close() // the child holds its own descriptor
	fmt.Fprintln(qlog, strings.Join(v.args, " "))

	// An os.Pipe rather than cmd.StdoutPipe: Wait closes the latter as soon
	// as QEMU exits, and the console's last lines (the marker, printed just
	// before power-off) could still be unread in it.
	pr, pw, err := os.Pipe()
	if err != nil {
		serial.Close()
		return fmt.Errorf("lab: %w", err)
	}
	cmd := v.net.Command(v.net.Srv, v.args[0], v.args[1:]...)
	cmd.Stdout, cmd.Stderr = pw, qlog
	v.start = time.Now()
	v.con = newConsole(v.start, time.Now)
	v.proc, err = v.net.Start(cmd)
	pw.Close() // QEMU has its copy; EOF comes when it exits
	if err != nil {
		pr.Close()
		serial.Close()
		return err
	}
	go func() {
		defer close(v.logDone)
		defer serial.Close()
		defer pr.Close()
		v.con.copy(pr, serial)
	}()
	return nil
}

// Name returns the VM's name.
func (v *VM) Name() string { return v.cfg.Name }

// Config returns the configuration the VM runs with, defaults applied.
func (v *VM) Config() VMConfig { return v.cfg }

// MAC returns the NIC's address.
func (v *VM) MAC() net.HardwareAddr { return v.cfg.MAC }

// Started returns the wall-clock time of power-on, to place server log
// entries on the VM's time axis.
func (v *VM) Started() time.Time { return v.start }

// Args returns QEMU's command line.
func (v *VM) Args() []string { return append([]string(nil), v.args...) }

// SerialLog returns the path of the serial log: one line per console line,
// prefixed with seconds since power-on.
func (v *VM) SerialLog() string { return v.serial }

// Lines returns the console so far; the last element may be a line still
// being printed.
func (v *VM) Lines() []Line { return v.con.all() }

// Tail returns the last n console lines as text, for failure messages.
func (v *VM) Tail(n int) string { return v.con.tail(n) }

// Find returns the first console line matching the regular expression
// pattern.
func (v *VM) Find(pattern string) (Line, bool, error) { return v.con.findPattern(pattern) }

// WaitFor waits until a complete console line matches the regular
// expression pattern and returns it; Line.At is when the line began to
// appear. Waiting for the line's end means the returned Text is whole (a
// marker's fields are all there). It fails when timeout passes, ctx ends
// or the VM stops first.
func (v *VM) WaitFor(ctx context.Context, pattern string, timeout time.Duration) (Line, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return Line{}, fmt.Errorf("lab: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		lines, _, changed, eof := v.con.snapshot()
		for _, l := range lines {
			if re.MatchString(l.Text) {
				return l, nil
			}
		}
		if eof {
			return Line{}, fmt.Errorf("lab: %s stopped before /%s/ appeared: %w", v.cfg.Name, pattern, v.exitErr())
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

// exitErr describes how QEMU ended once its output is closed.
func (v *VM) exitErr() error {
	select {
	case <-v.proc.Done():
		if err := v.proc.Err(); err != nil {
			return fmt.Errorf("qemu: %w", err)
		}
		return errors.New("qemu exited")
	case <-time.After(5 * time.Second):
		return errors.New("qemu closed its output")
	}
}

// Done is closed when QEMU has exited (the guest powered off, or Kill).
func (v *VM) Done() <-chan struct{} { return v.proc.Done() }

// Kill powers the VM off at once and waits for its console to be logged.
func (v *VM) Kill() {
	v.proc.Kill()
	<-v.logDone
}

// Close kills the VM if it still runs and removes its tap. The serial log
// stays. It is idempotent.
func (v *VM) Close() error {
	v.closeOnce.Do(func() {
		v.Kill()
		v.closeErr = v.net.RemoveTap(v.tap)
		if v.closeErr != nil && !namespaceExists(v.net.Srv) {
			v.closeErr = nil // Net.Close came first and took the tap with it
		}
	})
	return v.closeErr
}

// machineDefaults fills in what a machine's config leaves out, for both
// kinds of lab machine (VMConfig, BMCVMConfig): name "vm", a virtio NIC,
// 1 GiB of memory, TCG.
func machineDefaults(name, nic *string, memoryMiB *int, accel *string) {
	if *name == "" {
		*name = "vm"
	}
	if *nic == "" {
		*nic = "virtio-net-pci"
	}
	if *memoryMiB == 0 {
		*memoryMiB = 1024
	}
	if *accel == "" {
		*accel = "tcg"
	}
}

// machineDisk creates a blank disk of size bytes when size is set, at
// *disk or, when that is empty, DIR/NAME.img (then *disk names it).
func machineDisk(disk *string, dir, name string, size int64) error {
	if size <= 0 {
		return nil
	}
	if *disk == "" {
		*disk = filepath.Join(dir, name+".img")
	}
	return createDisk(*disk, size)
}

func createDisk(name string, size int64) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("lab: disk: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("lab: disk: %w", err)
	}
	return f.Close()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("lab: %w", err)
	}
	return out.Close()
}
