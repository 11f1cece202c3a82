package osimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rackboot/rackboot/e2e/lab"
)

// inputs are the bytes and tools a build uses, and their digest.
type inputs struct {
	kernel, stub, gptmbr []byte
	modules              []string // files under the modules directory, in load order
	syslinux             string   // the installer's path
	kernelRelease        string
	key                  string
}

func readInputs(cfg Config, kernel, modDir string) (*inputs, error) {
	in := &inputs{kernelRelease: filepath.Base(modDir)}
	var err error
	for _, f := range []struct {
		dst  *[]byte
		name string
	}{{&in.kernel, kernel}, {&in.stub, cfg.stub()}, {&in.gptmbr, cfg.gptmbr()}} {
		if *f.dst, err = os.ReadFile(f.name); err != nil {
			return nil, fmt.Errorf("osimage: %w", err)
		}
	}
	if in.modules, err = lab.ResolveModules(modDir, initramfsModules()); err != nil {
		return nil, err
	}
	if in.syslinux, err = exec.LookPath("syslinux"); err != nil {
		return nil, fmt.Errorf("osimage: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%q\n%q\n%q\n%q\n%q\n", revision, cfg.Version, cmdline(), syslinuxCfg(), initScript, osInit, osRelease(cfg.Version))
	for _, b := range [][]byte{in.kernel, in.stub, in.gptmbr} {
		fmt.Fprintf(h, "%x\n", sha256.Sum256(b))
	}
	for _, m := range in.modules {
		sum, err := fileSHA256(filepath.Join(modDir, m))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s %s\n", m, sum)
	}
	// The tools that write bytes into the image: the syslinux installer
	// carries ldlinux.sys and ldlinux.c32; mtools and mksquashfs lay out
	// what they write.
	for _, name := range []string{cfg.busybox(), in.syslinux, "mcopy", "mksquashfs"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("osimage: %w", err)
		}
		sum, err := fileSHA256(p)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s\n", sum)
	}
	in.key = hex.EncodeToString(h.Sum(nil))
	return in, nil
}

// modulesDirOf finds the modules of ROOT/boot/vmlinuz-VERSION.
func modulesDirOf(kernel string) (string, error) {
	version, ok := strings.CutPrefix(filepath.Base(kernel), "vmlinuz-")
	if !ok || version == "" {
		return "", fmt.Errorf("osimage: cannot tell the kernel version of %s; set ModulesDir", kernel)
	}
	root := filepath.Dir(filepath.Dir(kernel))
	for _, d := range []string{"lib", "usr/lib"} {
		p := filepath.Join(root, d, "modules", version)
		if _, err := os.Stat(filepath.Join(p, "modules.dep")); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("osimage: no modules.dep for %s under %s", version, root)
}

// cached returns the image of manifest when it was built with key and the
// file is intact.
func cached(manifest, file, key string) (*Image, bool) {
	b, err := os.ReadFile(manifest)
	if err != nil {
		return nil, false
	}
	var im Image
	if json.Unmarshal(b, &im) != nil || im.Key != key {
		return nil, false
	}
	sum, err := fileSHA256(file)
	if err != nil || sum != im.SHA256 {
		return nil, false
	}
	im.Path = file
	return &im, true
}

// packages asks dpkg for the versions of the packages a build reads.
func packages(ctx context.Context) map[string]string {
	out, _ := exec.CommandContext(ctx, "dpkg-query", "-W", "-f", "${Package} ${Version}\n",
		"busybox-static", "systemd-boot-efi", "syslinux", "syslinux-common", "mtools", "squashfs-tools").Output()
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if p, v, ok := strings.Cut(l, " "); ok && v != "" {
			m[p] = v
		}
	}
	return m
}
