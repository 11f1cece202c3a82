package imaging

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/rackboot/rackboot/agentapi"
)

// fakeMkfsXFS puts a mkfs.xfs on PATH (and nothing else) that runs script.
func fakeMkfsXFS(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, mkfsXFS), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
}

// fakeLoopHost is a Host whose /dev has a loop-control.
func fakeLoopHost(t *testing.T) Host {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, loopControl), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return Host{Root: root}
}

// TestInstallXFSRefused: a plan with xfs that this installer cannot carry
// out is refused before anything is written, saying what to do.
func TestInstallXFSRefused(t *testing.T) {
	plan := func(size agentapi.Size) *agentapi.Plan {
		return &agentapi.Plan{Partitions: []agentapi.Partition{
			{Name: "srv", Type: "linux", Size: 8 * mib, Filesystem: agentapi.FilesystemExt4},
			{Name: "scratch", Type: "linux", Size: size, Filesystem: agentapi.FilesystemXFS, Preserve: true},
		}}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, in *Installer)
		size  agentapi.Size
		want  string
	}{
		{"no mkfs.xfs", func(t *testing.T, in *Installer) { t.Setenv("PATH", t.TempDir()) }, 300 * mib,
			"filesystem xfs on partition 2 (scratch): this installer has no mkfs.xfs: build its initramfs with `rackboot initrd --tools mkfs.xfs` on a host with xfsprogs"},
		{"no loop driver", func(t *testing.T, in *Installer) { fakeMkfsXFS(t, "exit 0"); in.Host = Host{Root: t.TempDir()} }, 300 * mib,
			"filesystem xfs on partition 2 (scratch): this installer has no loop device driver"},
		{"too small", func(t *testing.T, in *Installer) { fakeMkfsXFS(t, "exit 0"); in.Host = fakeLoopHost(t) }, 299 * mib,
			`xfs partition "scratch" of 299MiB: mkfs.xfs makes no file system below 300MiB`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newDisk(t, 320*mib)
			before := sha256File(t, p)
			in := testInstaller(t)
			tc.setup(t, in)
			_, err := in.Install(context.Background(), plan(tc.size), Target{Path: p})
			if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Install() = %v, want ErrInvalidPlan saying %q", err, tc.want)
			}
			if sha256File(t, p) != before {
				t.Error("the disk changed")
			}
		})
	}
}

// TestRunMkfsXFS checks the command line given to mkfs.xfs and that its
// output is in the error when it fails.
func TestRunMkfsXFS(t *testing.T) {
	args := filepath.Join(t.TempDir(), "args")
	fakeMkfsXFS(t, `echo "$@" > `+args)
	id := uuid.MustParse("0b6c3f2e-6a39-4d5e-9c2a-3e1f0d9b8a71")
	if err := runMkfsXFS(context.Background(), "/dev/loop7", "scratch", id, 4096); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(args)
	if err != nil {
		t.Fatal(err)
	}
	want := "-f -K -L scratch -m uuid=0b6c3f2e-6a39-4d5e-9c2a-3e1f0d9b8a71 -s size=4096 /dev/loop7\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("mkfs.xfs arguments (-want +got):\n%s", diff)
	}

	fakeMkfsXFS(t, "echo meta-data=/dev/loop7; echo 'Filesystem must be larger than 300MB.' >&2; exit 1")
	err = runMkfsXFS(context.Background(), "/dev/loop7", "scratch", id, 512)
	if err == nil || !strings.Contains(err.Error(), "exit status 1: meta-data=/dev/loop7 | Filesystem must be larger than 300MB.") {
		t.Errorf("runMkfsXFS() = %v, want the exit status and the output", err)
	}
}

func TestLabels(t *testing.T) {
	for _, tc := range []struct{ name, xfs, ext4 string }{
		{"data", "data", "data"},
		{"scratch-volume-01", "scratch-volu", "scratch-volume-0"},
		{"données-scratch", "données-scr", "données-scratch"}, // é is two bytes
		{"aaaaaaaaaaaé", "aaaaaaaaaaa", "aaaaaaaaaaaé"},       // not cut inside é
	} {
		if got := xfsLabel(tc.name); got != tc.xfs {
			t.Errorf("xfsLabel(%q) = %q, want %q", tc.name, got, tc.xfs)
		}
		if got := fsLabel(tc.name); got != tc.ext4 {
			t.Errorf("fsLabel(%q) = %q, want %q", tc.name, got, tc.ext4)
		}
	}
}

// TestInstallXFS creates xfs with the real mkfs.xfs through a loop device
// (root only), on both sector sizes, checks it with xfs_repair -n and
// xfs_db, and reinstalls: the preserved xfs partition keeps its file
// system (same UUID, same bytes), the other one gets a new one.
func TestInstallXFS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	needTool(t, mkfsXFS)
	repair, db := needTool(t, "xfs_repair"), needTool(t, "xfs_db")
	if _, err := os.Stat(loopControl); err != nil {
		t.Skipf("no loop driver: %v", err)
	}
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			plan := &agentapi.Plan{Partitions: []agentapi.Partition{
				{Name: "esp", Type: "esp", Size: 260 * mib},
				{Name: "scratch-volume", Type: "linux", Size: 300 * mib, Filesystem: agentapi.FilesystemXFS},
				{Name: "data", Type: "linux", Size: agentapi.Rest, Filesystem: agentapi.FilesystemXFS, Preserve: true},
			}}
			p := newDisk(t, 1*gib)
			install := func() map[string]string {
				t.Helper()
				if _, err := testInstaller(t).Install(context.Background(), plan, Target{Path: p, SectorSize: ss}); err != nil {
					t.Fatal(err)
				}
				ids := map[string]string{}
				for _, name := range []string{"scratch-volume", "data"} {
					part := partitionByName(t, p, ss, name)
					img := extract(t, p, part.GetStart(), part.GetSize())
					if out, err := exec.Command(repair, "-n", img).CombinedOutput(); err != nil {
						t.Errorf("xfs_repair -n of %s: %v\n%s", name, err, out)
					}
					out, err := exec.Command(db, "-r", "-c", "label", "-c", "sb 0", "-c", "p uuid sectsize", img).CombinedOutput()
					if err != nil {
						t.Fatalf("xfs_db of %s: %v\n%s", name, err, out)
					}
					t.Logf("%s: %s", name, out)
					if want := fmt.Sprintf("label = %q", xfsLabel(name)); !strings.Contains(string(out), want) {
						t.Errorf("%s: want %s", name, want)
					}
					if want := fmt.Sprintf("sectsize = %d", ss); !strings.Contains(string(out), want) {
						t.Errorf("%s: want %s", name, want)
					}
					ids[name] = string(out) + sha256Hex(readRange(t, p, part.GetStart(), part.GetSize()))
				}
				return ids
			}
			first := install()
			second := install()
			if first["data"] != second["data"] {
				t.Errorf("the preserved xfs partition changed:\n%s\n%s", first["data"], second["data"])
			}
			if first["scratch-volume"] == second["scratch-volume"] {
				t.Error("the reinstall kept the xfs partition that is not preserved")
			}
		})
	}
}
