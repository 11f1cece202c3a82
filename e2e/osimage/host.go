package osimage

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// Files of Debian 12 packages that Build uses by default.
const (
	DefaultBusybox = "/bin/busybox"                                // busybox-static
	DefaultStub    = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub" // systemd-boot-efi
	DefaultGPTMBR  = "/usr/lib/syslinux/mbr/gptmbr.bin"            // syslinux-common
)

// requirement is a command or file Build needs, and the Debian package
// that has it.
type requirement struct {
	command, file, pkg string
}

func requirements(cfg Config) []requirement {
	return []requirement{
		{file: cfg.busybox(), pkg: "busybox-static"},
		{file: cfg.stub(), pkg: "systemd-boot-efi"},
		{file: cfg.gptmbr(), pkg: "syslinux-common"},
		{command: "syslinux", pkg: "syslinux"},
		// The syslinux installer writes into the FAT file system
		// through mcopy and mattrib.
		{command: "mcopy", pkg: "mtools"},
		{command: "mattrib", pkg: "mtools"},
		{command: "mksquashfs", pkg: "squashfs-tools"},
	}
}

// CheckHost reports everything this machine lacks to Build with cfg (the
// zero Config for the defaults), naming the Debian package of each. Root
// is not needed, except for fetching the kernel with e2e/lab when
// Config.Kernel is empty.
func CheckHost(cfg Config) error {
	var errs []error
	for _, r := range requirements(cfg) {
		if r.command != "" {
			if _, err := exec.LookPath(r.command); err != nil {
				errs = append(errs, fmt.Errorf("command %s missing (package %s)", r.command, r.pkg))
			}
			continue
		}
		if _, err := os.Stat(r.file); err != nil {
			errs = append(errs, fmt.Errorf("%s missing (package %s)", r.file, r.pkg))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("osimage: this host cannot build the demo OS: %w", errors.Join(errs...))
	}
	return nil
}
