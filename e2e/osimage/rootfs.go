package osimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// osRelease is the os-release(5) file of a version: /etc/os-release on the
// root file system and the unified kernel image's .osrel section.
func osRelease(version string) string {
	return fmt.Sprintf(`NAME="rackboot demo OS"
ID=rackboot-demo
VERSION=%q
VERSION_ID=%s
PRETTY_NAME="rackboot demo OS %s"
HOME_URL="https://github.com/rackboot/rackboot"
`, version, version, version)
}

// buildRootfs makes the read-only root file system of version in dir/root.sqfs
// with mksquashfs: busybox, osInit as /sbin/init, os-release, and the
// mount points. Owners are root and every time is 0 (-all-root,
// -all-time, -mkfs-time), and squashfs-tools 4.5 orders its output the
// same whatever the thread timing, so the file depends on the content only.
func buildRootfs(ctx context.Context, dir, version, busybox string) (string, error) {
	tree := filepath.Join(dir, "root")
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return "", fmt.Errorf("osimage: root file system: %w", err)
	}
	files := []struct {
		name string
		perm os.FileMode
		data []byte
	}{
		{"bin/busybox", 0o755, bb},
		{"sbin/init", 0o755, []byte(osInit)},
		{"etc/os-release", 0o644, []byte(osRelease(version))},
	}
	for _, d := range []string{"bin", "sbin", "etc", "dev", "proc", "sys", "run"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			return "", fmt.Errorf("osimage: root file system: %w", err)
		}
	}
	for _, f := range files {
		p := filepath.Join(tree, f.name)
		if err := os.WriteFile(p, f.data, f.perm); err != nil {
			return "", fmt.Errorf("osimage: root file system: %w", err)
		}
		// WriteFile's permissions pass through the umask.
		if err := os.Chmod(p, f.perm); err != nil {
			return "", fmt.Errorf("osimage: root file system: %w", err)
		}
	}
	for _, d := range []string{".", "bin", "sbin", "etc", "dev", "proc", "sys", "run"} {
		if err := os.Chmod(filepath.Join(tree, d), 0o755); err != nil {
			return "", fmt.Errorf("osimage: root file system: %w", err)
		}
	}
	out := filepath.Join(dir, "root.sqfs")
	cmd := exec.CommandContext(ctx, "mksquashfs", tree, out,
		"-noappend", "-quiet", "-no-progress", "-comp", "xz", "-no-xattrs",
		"-all-root", "-all-time", "0", "-mkfs-time", "0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("osimage: mksquashfs: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return out, nil
}
