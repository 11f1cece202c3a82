package osimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// initramfsConf is the image's initramfs-tools configuration: the root
// file system is ext4, so its initramfs holds fsck.ext4 and checks it
// before mounting it. A shell hook writes it: no single quotes.
const (
	initramfsConfPath = "etc/initramfs-tools/conf.d/rackboot"
	initramfsConf     = "# Written by the rackboot image builder.\nFSTYPE=ext4\n"
)

// mmdebstrapArgs returns mmdebstrap's arguments to install the image's
// packages into target: Debian's required set (the minbase variant) and
// cfg.includes(), from the main archive, its updates and its security
// archive, with initramfsConf in place first. simulate only resolves
// the packages (--simulate) and prints what apt would install.
func mmdebstrapArgs(cfg DebianConfig, target string, simulate bool) []string {
	format := "directory"
	if simulate {
		format = "null"
	}
	args := []string{"--mode=root", "--format=" + format, "--variant=minbase",
		"--include=" + strings.Join(cfg.includes(), ",")}
	if simulate {
		args = append(args, "--simulate", "--verbose")
	} else {
		// Before any package: the kernel package makes the initramfs
		// in the chroot, where initramfs-tools cannot probe the root
		// file system's type and would leave fsck.ext4 out.
		args = append(args, fmt.Sprintf(`--setup-hook=mkdir -p "$1/%s" && printf '%%s' '%s' > "$1/%s/%s"`,
			path.Dir(initramfsConfPath), initramfsConf, path.Dir(initramfsConfPath), path.Base(initramfsConfPath)))
	}
	return append(args, DebianSuite, target,
		fmt.Sprintf("deb %s %s main", cfg.mirror(), DebianSuite),
		fmt.Sprintf("deb %s %s-updates main", cfg.mirror(), DebianSuite),
		fmt.Sprintf("deb %s %s-security main", cfg.securityMirror(), DebianSuite))
}

// mmdebstrapCommand returns the command that runs mmdebstrap with args in
// a mount namespace of its own: the /proc, /sys and /dev mounts it makes
// in the chroot vanish with it, even when it is killed, and never show on
// the host, where removing the build directory could reach through them.
// Cancelling ctx asks it to stop with SIGTERM, and kills it a minute
// later.
func mmdebstrapCommand(ctx context.Context, cfg DebianConfig, args ...string) (*exec.Cmd, error) {
	bin, err := lookPath("mmdebstrap")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(cfg.epoch().Unix(), 10))
	isolateMounts(cmd)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	return cmd, nil
}

// resolvePackages asks the mirror which packages, in which versions, an
// image of cfg would hold, without downloading them: mmdebstrap
// --simulate, which runs apt-get update and apt's resolver as the build
// would.
func resolvePackages(ctx context.Context, cfg DebianConfig) (map[string]string, error) {
	cmd, err := mmdebstrapCommand(ctx, cfg, mmdebstrapArgs(cfg, os.DevNull, true)...)
	if err != nil {
		return nil, err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("osimage: mmdebstrap --simulate: %w: %s", err, lastLines(string(out), 20))
	}
	pkgs := parseSimulation(out)
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("osimage: mmdebstrap --simulate named no packages: %s", lastLines(string(out), 20))
	}
	return pkgs, nil
}

// instRE matches apt-get --simulate's line for a package it would unpack:
// "Inst libc6 (2.36-9+deb12u10 Debian:12.11/stable [amd64])", with the
// installed version in brackets after the name when it upgrades one.
var instRE = regexp.MustCompile(`^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) `)

// parseSimulation returns the packages and versions of apt-get
// --simulate's Inst lines.
func parseSimulation(out []byte) map[string]string {
	pkgs := map[string]string{}
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		if m := instRE.FindStringSubmatch(s.Text()); m != nil {
			pkgs[m[1]] = m[2]
		}
	}
	return pkgs
}

// mmdebstrap installs the packages into root, which must not exist, and
// keeps mmdebstrap's output in logName.
func mmdebstrap(ctx context.Context, cfg DebianConfig, root, logName string) error {
	logf, err := os.Create(logName)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer logf.Close()
	cmd, err := mmdebstrapCommand(ctx, cfg, mmdebstrapArgs(cfg, root, false)...)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logName)
		return fmt.Errorf("osimage: mmdebstrap: %w: %s", err, lastLines(string(b), 30))
	}
	return nil
}

// installedPackages reads the root file system's dpkg database.
func installedPackages(ctx context.Context, root string) (map[string]string, error) {
	bin, err := lookPath("dpkg-query")
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W",
		"-f", "${db:Status-Abbrev} ${Package} ${Version}\n").Output()
	if err != nil {
		return nil, fmt.Errorf("osimage: dpkg-query: %w", err)
	}
	pkgs := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "ii" {
			pkgs[f[1]] = f[2]
		}
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("osimage: no package installed in %s", root)
	}
	return pkgs, nil
}

// versionDiff lists the installed packages that the resolution did not
// name in the same version.
func versionDiff(resolved, installed map[string]string) []string {
	var diff []string
	for p, v := range installed {
		if resolved[p] != v {
			diff = append(diff, fmt.Sprintf("%s %s (resolved %q)", p, v, resolved[p]))
		}
	}
	slices.Sort(diff)
	return diff
}

// kernelRelease returns the release (uname -r) of the one kernel in root.
func kernelRelease(root string) (string, error) {
	ents, err := os.ReadDir(filepath.Join(root, "usr/lib/modules"))
	if err != nil {
		return "", fmt.Errorf("osimage: kernel modules: %w", err)
	}
	if len(ents) != 1 {
		return "", fmt.Errorf("osimage: %d kernels in the root file system, want 1", len(ents))
	}
	return ents[0].Name(), nil
}

// debianKey is the digest of everything that makes an image's bytes: the
// builder's revision and the files it writes, the configuration, the
// package versions the mirror offers, and the host tools that write the
// disk.
func debianKey(cfg DebianConfig, resolved map[string]string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d\n%d\n", debianRevision, cfg.Version, cfg.diskSize(), cfg.epoch().Unix())
	fmt.Fprintf(h, "%q\n", mmdebstrapArgs(cfg, "", false))
	// What the builder writes: a change to any of it makes other bytes.
	ids := debianIDsOf(cfg.Version)
	fmt.Fprintf(h, "%q\n", []string{cloudCfg, sshHostKeys, etcHosts, mke2fsConf, fstab(ids), imageRelease(cfg.Version),
		debianGRUBCfg(cfg.Version, ids), grubLoadCfg(ids.rootFS)})
	fmt.Fprintf(h, "%q %q %q\n", grubBIOSModules, grubEFIModules, grubPlatforms)
	for _, f := range cfg.Files {
		fmt.Fprintf(h, "file %q %o %x\n", f.Path, f.Mode, sha256.Sum256([]byte(f.Content)))
	}
	names := make([]string, 0, len(resolved))
	for p := range resolved {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		fmt.Fprintf(h, "pkg %s %s\n", p, resolved[p])
	}
	for _, r := range debianRequirements() {
		p, err := lookPath(r.command)
		if err != nil {
			return "", err
		}
		sum, err := fileSHA256(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "tool %s %s\n", r.command, sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lookPath finds a command in PATH or, for the commands Debian keeps in
// /usr/sbin (mkfs.ext4, chroot), there: an ordinary user's PATH lacks it.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("osimage: %w", err)
}
