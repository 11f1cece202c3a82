package imaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/google/uuid"

	"github.com/rackboot/rackboot/agentapi"
)

// mkfsXFS is the program that creates xfs: no Go library writes it, so the
// installer runs the distribution's, which `rackboot initrd --tools`
// carries into the initramfs with its libraries. The agent sets PATH.
const mkfsXFS = "mkfs.xfs"

// loopControl is the loop driver's control device, present once the
// driver is loaded (or built in).
const loopControl = "/dev/loop-control"

// checkTools checks, before anything is written, that this installer can
// create the file systems plan asks for: xfs needs mkfs.xfs and the loop
// driver. A preserved partition needs them too, though an existing one is
// never formatted: on a fresh disk it is created.
func (in *Installer) checkTools(p *agentapi.Plan) error {
	for i, part := range p.Partitions {
		if part.Filesystem != agentapi.FilesystemXFS {
			continue
		}
		where := fmt.Sprintf("filesystem xfs on partition %d (%s)", i+1, part.Name)
		if _, err := exec.LookPath(mkfsXFS); err != nil {
			return fmt.Errorf("%w: %s: this installer has no %s: build its initramfs with `rackboot initrd --tools mkfs.xfs` on a host with xfsprogs",
				ErrInvalidPlan, where, mkfsXFS)
		}
		if _, err := os.Stat(in.Host.path(loopControl)); err != nil {
			return fmt.Errorf("%w: %s: this installer has no loop device driver (%v): build its initramfs with the loop module, one of `rackboot initrd`'s default modules",
				ErrInvalidPlan, where, err)
		}
		return nil
	}
	return nil
}

// makeXFS creates xfs on the n bytes at off of the target, labelled with
// the partition's name, by running mkfs.xfs on a loop device that maps
// exactly those bytes.
//
// Why a loop device and not the kernel's partition device (/dev/sda3):
// the installer holds the whole disk open with O_EXCL, and the kernel
// refuses an exclusive open of a partition of a disk someone else holds
// exclusively (EBUSY), which is how mkfs.xfs opens its device. The
// partition device also exists only once the kernel has re-read the
// table, which it defers while the disk is in use, and goes by names
// that differ per driver (sda3, nvme0n1p3); a loop device needs neither,
// and works on image files too. Its backing file is the disk itself,
// opened without O_EXCL (the holder may open it again), so the loop
// driver's buffered I/O goes through the disk's own page cache, the one
// the installer's buffered writes use: no stale cached block can shadow
// what mkfs.xfs writes, or the other way round. The disk is synced first
// all the same, so the partition table is on the device before mkfs.xfs
// starts writing.
func (j *job) makeXFS(ctx context.Context, off, n int64, name string) error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync before mkfs.xfs: %w", err)
	}
	loop, err := attachLoop(j.path, off, n, j.ss)
	if err != nil {
		return err
	}
	defer loop.Close()
	return runMkfsXFS(ctx, loop.Name(), xfsLabel(name), uuid.New(), xfsSectorSize(j.ss, int(j.d.PhysicalBlocksize)))
}

// runMkfsXFS runs mkfs.xfs on dev. -f: the device may hold remnants of an
// old file system (its first and last MiB are zeroed, the rest is not);
// -K: no discard, which on a loop device over a disk becomes a write of
// zeros over the whole partition, and a new file system needs none. Its
// output goes into the error when it fails.
func runMkfsXFS(ctx context.Context, dev, label string, id uuid.UUID, sectorSize int) error {
	cmd := exec.CommandContext(ctx, mkfsXFS, "-f", "-K", "-L", label, "-m", "uuid="+id.String(),
		"-s", fmt.Sprintf("size=%d", sectorSize), dev)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, lastLines(out, 10))
	}
	return nil
}

// lastLines returns the last n lines of out, on one line each separated
// by " | ", for an error message.
func lastLines(out []byte, n int) string {
	lines := strings.Split(string(bytes.TrimSpace(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "no output"
	}
	return strings.Join(lines, " | ")
}

// xfsSectorSize is the sector size of the file system: the disk's
// physical sector when it is larger than the logical one (a 512e disk's
// 4096), as mkfs.xfs picks on the disk's own partition device; the loop
// device reports only the logical size.
func xfsSectorSize(logical, physical int) int {
	if physical > logical && physical <= 4096 {
		return physical
	}
	return logical
}

// xfsLabel is an xfs label from a partition name: 12 bytes at most.
func xfsLabel(name string) string { return cutLabel(name, 12) }
