package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rackboot/rackboot/agentapi"
)

// mount is one file system PID 1 mounts itself: the initramfs holds only
// empty directories for them.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

const (
	nosuid = unix.MS_NOSUID
	nodev  = unix.MS_NODEV
	noexec = unix.MS_NOEXEC
)

func (m mount) do() error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", m.target, err)
	}
	err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
	// EBUSY: already mounted, by the kernel (CONFIG_DEVTMPFS_MOUNT) or by
	// whoever ran us.
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
	}
	return nil
}

// attachConsole mounts devtmpfs and makes /dev/console the agent's
// standard input, output and error. The initramfs that `rackboot initrd`
// builds holds no device nodes, so whatever the kernel gave PID 1 (its
// built-in /dev/console, or nothing at all) is replaced. When even that
// fails, /dev/kmsg still reaches the console through the kernel's log.
func attachConsole() error {
	merr := mount{"devtmpfs", "/dev", "devtmpfs", nosuid, "mode=0755"}.do()
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		var kerr error
		if fd, kerr = unix.Open("/dev/kmsg", unix.O_WRONLY, 0); kerr != nil {
			return errors.Join(merr, fmt.Errorf("open /dev/console: %w", err), fmt.Errorf("open /dev/kmsg: %w", kerr))
		}
	}
	for target := 0; target <= 2; target++ {
		if fd != target {
			unix.Dup3(fd, target, 0)
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
	return errors.Join(merr, err)
}

// mountSystem mounts proc, sys, tmp and run.
// Every failure is returned; the agent goes on regardless, since most of
// them only cost a feature.
func mountSystem() error {
	var errs []error
	for _, m := range []mount{
		{"proc", "/proc", "proc", nosuid | nodev | noexec, ""},
		{"sysfs", "/sys", "sysfs", nosuid | nodev | noexec, ""},
		{"tmpfs", "/tmp", "tmpfs", nosuid | nodev, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", nosuid | nodev, "mode=0755"},
	} {
		if err := m.do(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountEFIVars mounts efivarfs, which exposes UEFI variables (boot
// entries, Secure Boot state), on machines booted through UEFI, and
// returns them; nil on BIOS machines. It runs after the modules are
// loaded: distribution kernels build efivarfs as a module.
func mountEFIVars() (efiVars, error) {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return nil, nil // BIOS
	}
	if err := (mount{"efivarfs", efiVarsDir, "efivarfs", nosuid | nodev | noexec, ""}).do(); err != nil {
		return nil, err
	}
	return efivarfs{dir: efiVarsDir}, nil
}

// uptime is the time since the kernel booted, the clock of its own console
// messages, so the agent's lines and the kernel's interleave in order.
func uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// entropyWait bounds the wait for the kernel's random number generator
// before DHCP.
const entropyWait = time.Minute

// seedRandom blocks in getrandom(2) until the kernel's random number
// generator is initialised, and returns how long that took.
//
// Blocking is what gets it initialised on machines without a hardware
// source the kernel trusts (no RDRAND, as QEMU's TCG CPUs, and no
// virtio-rng): a blocked getrandom makes the kernel (5.4 and later)
// gather timer jitter until the generator is ready, within a second. The
// DHCP library only polls getrandom with GRND_NONBLOCK for its
// transaction IDs, which triggers nothing, and would fail after two
// minutes of EAGAIN.
func seedRandom() (time.Duration, error) {
	start := time.Now()
	var b [1]byte
	for {
		_, err := unix.Getrandom(b[:], 0)
		if err == unix.EINTR {
			continue
		}
		return time.Since(start), err
	}
}

// kernelLoader loads modules with finit_module(2) and init_module(2).
type kernelLoader struct{}

func (kernelLoader) loadFile(f *os.File) error {
	return unix.FinitModule(int(f.Fd()), "", 0)
}

func (kernelLoader) loadImage(image []byte) error {
	return unix.InitModule(image, "")
}

// powerAction ends the agent: flush the page cache, then restart or power
// off. PID 1 must never exit (the kernel panics), so if the reboot
// syscall fails the agent says so and waits for someone to press reset.
func powerAction(con *console, after string) {
	unix.Sync()
	cmd, what := unix.LINUX_REBOOT_CMD_RESTART, "reboot"
	if after == agentapi.AfterPoweroff {
		cmd, what = unix.LINUX_REBOOT_CMD_POWER_OFF, "power off"
	}
	err := unix.Reboot(cmd)
	con.Printf("rackboot-agent: cannot %s: %v; reset the machine", what, err)
	for {
		time.Sleep(time.Hour)
	}
}
