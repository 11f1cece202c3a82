package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// IPXEDir holds the iPXE network boot programs of Debian's ipxe package
// (undionly.kpxe, ipxe.efi, snponly.efi), what a server hands firmware.
const IPXEDir = "/usr/lib/ipxe"

// CheckHost reports everything this machine lacks to run the lab: root,
// the commands it runs, the firmware and iPXE files. One error names all
// of them, so a single run tells what to install.
func CheckHost() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("not root: namespaces, bridges and taps need CAP_NET_ADMIN"))
	}
	cmds := map[string]string{
		"ip":                 "iproute2",
		"qemu-system-x86_64": "qemu-system-x86",
		"busybox":            "busybox-static",
		"apt-get":            "apt",
		"apt-cache":          "apt",
		"dpkg":               "dpkg",
		"depmod":             "kmod",
	}
	for _, name := range []string{"ip", "qemu-system-x86_64", "busybox", "apt-get", "apt-cache", "dpkg", "depmod"} {
		if _, err := exec.LookPath(name); err != nil {
			errs = append(errs, fmt.Errorf("command %s missing (package %s)", name, cmds[name]))
		}
	}
	files := []struct{ path, pkg string }{
		{OVMFCode, "ovmf"},
		{OVMFVars, "ovmf"},
		{filepath.Join(IPXEDir, "undionly.kpxe"), "ipxe"},
		{filepath.Join(IPXEDir, "ipxe.efi"), "ipxe"},
		{filepath.Join(IPXEDir, "qemu", "efi-virtio.rom"), "ipxe-qemu"},
		{"/usr/share/seabios/bios-256k.bin", "seabios"},
		{"/bin/busybox", "busybox-static"},
	}
	for _, f := range files {
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s missing (package %s)", f.path, f.pkg))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab: this host cannot run the lab: %w", errors.Join(errs...))
	}
	return nil
}
