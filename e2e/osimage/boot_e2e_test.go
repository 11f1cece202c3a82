//go:build e2e

package osimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/imaging"
)

// TestBootFromDisk installs the demo images with rackboot's installer
// (imaging) onto disk image files, as the agent does on a machine, then
// boots them in QEMU from disk and reads what the OS reports: the config
// drive's hostname and key, and the data partition, which a reinstall
// with demo-1.1 must preserve.
func TestBootFromDisk(t *testing.T) {
	if os.Getenv("RACKBOOT_E2E") != "1" {
		t.Skip("set RACKBOOT_E2E=1 to boot the images in QEMU")
	}
	var missing []error
	for _, f := range []string{lab.OVMFCode, lab.OVMFVars} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, fmt.Errorf("%s missing (package ovmf)", f))
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		missing = append(missing, errors.New("qemu-system-x86_64 missing (package qemu-system-x86)"))
	}
	if err := errors.Join(append(missing, CheckHost(Config{}))...); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	art, err := lab.BuildArtifacts(ctx, lab.ArtifactsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]*Image{}
	for _, v := range []string{"demo-1.0", "demo-1.1"} {
		start := time.Now()
		im, err := Build(ctx, Config{Version: v, Kernel: art.Kernel})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s, %d bytes, sha256 %s (%.1fs)", v, im.Path, im.Size, im.SHA256, time.Since(start).Seconds())
		images[v] = im
	}

	tests := []struct {
		name    string
		fw      lab.Firmware
		bus     string // "virtio" or "sata"
		upgrade bool
	}{
		{"uefi-virtio", lab.UEFI, "virtio", true},
		{"bios-virtio", lab.BIOS, "virtio", true},
		{"uefi-sata", lab.UEFI, "sata", false},
		{"bios-sata", lab.BIOS, "sata", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := "node-" + tt.name
			key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + strings.ReplaceAll(tt.name, "-", "") + " ops@rackboot"
			fw, dev := "efi", "/dev/vda4"
			if tt.fw == lab.BIOS {
				fw = "bios"
			}
			if tt.bus == "sata" {
				dev = "/dev/sda4"
			}
			disk := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(disk, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(disk, 256<<20); err != nil {
				t.Fatal(err)
			}

			install(t, disk, images["demo-1.0"], host, key, "i-1")
			got := boot(t, tt.fw, tt.bus, disk, "first")
			want := Report{Init: true, Version: "demo-1.0", Firmware: fw, Kernel: art.KernelVersion, Hostname: host,
				SSHKey: SSHKeySummary(key), Formatted: dev, Data: DataLine("demo-1.0", host), Done: true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("first boot (-want +got):\n%s", diff)
			}
			if !tt.upgrade {
				return
			}

			// Reinstall with the next version and another key: the
			// config drive is new, the data partition is kept.
			key2 := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ" + strings.ReplaceAll(tt.name, "-", "") + " admin@rackboot"
			install(t, disk, images["demo-1.1"], host, key2, "i-2")
			got = boot(t, tt.fw, tt.bus, disk, "upgraded")
			want = Report{Init: true, Version: "demo-1.1", Firmware: fw, Kernel: art.KernelVersion, Hostname: host,
				SSHKey: SSHKeySummary(key2), Data: DataLine("demo-1.0", host), Done: true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("boot after the upgrade (-want +got):\n%s", diff)
			}
		})
	}
}

// install writes im to the disk image file as rackboot's agent does for a
// whole-disk image, appending a config drive and a preserved data
// partition.
func install(t *testing.T, disk string, im *Image, hostname, key, instance string) {
	t.Helper()
	files, err := agentapi.NoCloud{InstanceID: instance, Hostname: hostname,
		Users: []agentapi.User{{Name: "ops", SSHKeys: []string{key}}}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	plan := &agentapi.Plan{
		Image: &agentapi.Image{URL: "file://" + im.Path, SHA256: im.SHA256, Format: agentapi.FormatZstd, Size: im.Size, RawSize: im.UncompressedSize},
		Partitions: []agentapi.Partition{
			{Name: "cidata", Type: "linux", Size: 8 << 20, Content: agentapi.ContentConfigDrive},
			{Name: "data", Type: "linux", Size: 64 << 20, Preserve: true},
		},
		ConfigDrive: files,
	}
	in := &imaging.Installer{
		Source: func(agentapi.Image) imaging.Opener {
			return func(_ context.Context, off int64) (io.ReadCloser, error) {
				f, err := os.Open(im.Path)
				if err != nil {
					return nil, err
				}
				if _, err := f.Seek(off, io.SeekStart); err != nil {
					f.Close()
					return nil, err
				}
				return f, nil
			}
		},
		// Image files in a temporary directory may be on tmpfs, which
		// has no O_DIRECT.
		Buffered: true,
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	start := time.Now()
	if _, err := in.Install(t.Context(), plan, imaging.Target{Path: disk}); err != nil {
		t.Fatalf("install %s: %v", im.Version, err)
	}
	t.Logf("installed %s in %.1fs", im.Version, time.Since(start).Seconds())
}

// boot starts QEMU on the disk, without network, waits for the OS to power
// off and returns what it reported. The console is kept in
// $RACKBOOT_E2E_LOGS when set.
func boot(t *testing.T, fw lab.Firmware, bus, disk, name string) Report {
	t.Helper()
	args := []string{
		"-accel", "tcg", "-machine", "q35", "-m", "512", "-smp", "1",
		"-nographic", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-nic", "none",
	}
	if fw == lab.UEFI {
		vars := filepath.Join(t.TempDir(), "vars.fd")
		b, err := os.ReadFile(lab.OVMFVars)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vars, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+lab.OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	switch bus {
	case "virtio":
		args = append(args, "-drive", "file="+disk+",if=virtio,format=raw")
	case "sata": // q35's AHCI controller
		args = append(args, "-drive", "file="+disk+",if=none,id=d0,format=raw", "-device", "ide-hd,drive=d0,bus=ide.0")
	}
	// TCG boots take 5 to 40 seconds, more when other machines share
	// the CPU.
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", args...).CombinedOutput()
	elapsed := time.Since(start)
	if dir := os.Getenv("RACKBOOT_E2E_LOGS"); dir != "" {
		p := filepath.Join(dir, "osimage-"+strings.ReplaceAll(t.Name(), "/", "-")+"-"+name+".log")
		if werr := os.WriteFile(p, out, 0o644); werr != nil {
			t.Log(werr)
		}
	}
	r := ParseConsole(string(out))
	if err != nil || !r.Done {
		t.Fatalf("%s boot: qemu: %v after %.1fs, OS done: %v; console ends:\n%s", name, err, elapsed.Seconds(), r.Done, tail(string(out), 40))
	}
	t.Logf("%s boot: powered off after %.1fs", name, elapsed.Seconds())
	return r
}

// testWriter sends what it is given to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
