package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/examples"
	"github.com/rackboot/rackboot/profiles"
)

// workDir is the one directory that holds everything the demo builds:
//
//	rackboot        the binary under demonstration
//	profiles/       the example fleet, written from examples.FS
//	artifacts/      the installer kernel and initramfs rackboot serves
//	data/           rackboot's state (its staged iPXE binaries)
//	rackboot.log    rackboot's JSON log
//	udhcpd.*        the site DHCP server's configuration, leases and log
//	NAME.*          each VM's serial console, QEMU log and UEFI variables
type workDir struct {
	dir string
}

func newWorkDir() (*workDir, error) {
	dir, err := os.MkdirTemp("", "rackboot-demo-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	return &workDir{dir: dir}, nil
}

func (w *workDir) path(elem ...string) string {
	return filepath.Join(append([]string{w.dir}, elem...)...)
}

func (w *workDir) binary() string    { return w.path("rackboot") }
func (w *workDir) profiles() string  { return w.path("profiles") }
func (w *workDir) artifacts() string { return w.path("artifacts") }
func (w *workDir) serverLog() string { return w.path("rackboot.log") }

// remove deletes the work directory and everything in it.
func (w *workDir) remove() error {
	if err := os.RemoveAll(w.dir); err != nil {
		return fmt.Errorf("removing the work directory: %w", err)
	}
	return nil
}

// buildRackboot compiles this module's ./cmd/rackboot into the work
// directory: the demo shows the code of the checkout it runs from.
func (w *workDir) buildRackboot(ctx context.Context) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	// -buildvcs=false: the demo runs as root, often in a checkout another
	// user owns, where git refuses to report its status ("dubious
	// ownership") and go build would fail for want of a revision to stamp.
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", w.binary(), "./cmd/rackboot")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/rackboot: %w\n%s", err, out)
	}
	return nil
}

// moduleRoot is the directory of the go.mod the demo runs in, so that it
// works from any directory of the checkout.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the rackboot module: run the demo from its checkout")
	}
	return filepath.Dir(gomod), nil
}

// writeProfiles writes the example fleet into the work directory and loads
// it as rackboot will.
func (w *workDir) writeProfiles() (*profiles.Set, error) {
	if err := os.MkdirAll(w.profiles(), 0o755); err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	files, err := fs.Glob(examples.FS, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	for _, name := range files {
		b, err := examples.FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("profiles: %w", err)
		}
		if err := os.WriteFile(filepath.Join(w.profiles(), name), b, 0o644); err != nil {
			return nil, fmt.Errorf("profiles: %w", err)
		}
	}
	set, err := profiles.Load(w.profiles())
	if err != nil {
		return nil, fmt.Errorf("the example fleet does not load: %w", err)
	}
	return set, nil
}

// installArtifacts places the lab's kernel and marker initramfs in the
// artifacts directory under every name the machines' installers ask for,
// so the profiles stay as an admin would write them. The kernel comes
// from the lab's cache, filled from the Debian mirror on the first run.
func (w *workDir) installArtifacts(ctx context.Context, ms []*machine, log *slog.Logger) (*lab.Artifacts, error) {
	arts, err := lab.BuildArtifacts(ctx, lab.ArtifactsConfig{Log: log})
	if err != nil {
		return nil, err
	}
	dir := w.artifacts()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	if err := arts.Install(dir); err != nil {
		return nil, err
	}
	for _, m := range ms {
		inst := m.host.Installer
		for _, f := range []struct{ want, have string }{
			{inst.Kernel, lab.KernelName},
			{inst.Initrd, lab.InitrdName},
		} {
			if err := alias(dir, f.want, f.have); err != nil {
				return nil, fmt.Errorf("host %s (%s): %w", m.hostname(), m.host.Source, err)
			}
		}
	}
	return arts, nil
}

// alias makes the artifact-relative path want a copy of dir/have, unless
// it is have itself. URLs are refused: the lab has no way out.
func alias(dir, want, have string) error {
	if want == "" || want == have {
		return nil
	}
	if strings.Contains(want, "://") {
		return fmt.Errorf("installer file %s is a URL; the lab serves only its own artifacts", want)
	}
	dst := filepath.Join(dir, filepath.FromSlash(path.Clean("/"+want)))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		return nil // an earlier host asked for the same name
	}
	if err := os.Link(filepath.Join(dir, have), dst); err != nil {
		return copyFile(filepath.Join(dir, have), dst)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("artifacts: %w", err)
	}
	return out.Close()
}
