package osimage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// The Debian image's layout: 512-byte sectors, partitions on 1 MiB
// boundaries, the root partition last so that it can grow into the disk,
// and the last MiB for the backup GPT.
const (
	debianBIOSBootStart = mib
	// debianBIOSBootSize holds core.img (about 30 KiB) many times over:
	// the size the GRUB manual recommends.
	debianBIOSBootSize = mib
	debianESPStart     = debianBIOSBootStart + debianBIOSBootSize
	// debianESPSize is Debian's usual ESP size: room for other loaders
	// and firmware updates; FAT32 with 512-byte clusters from 33 MiB on.
	debianESPSize   = 126 * mib
	debianRootStart = debianESPStart + debianESPSize
)

// debianTable returns the GPT of an image of size bytes.
func debianTable(ids debianIDs, size int64) *gpt.Table {
	parts := []struct {
		start, size int64
		typ         gpt.Type
		name, guid  string
	}{
		{debianBIOSBootStart, debianBIOSBootSize, gpt.BIOSBoot, BIOSBootPartition, ids.biosBoot},
		{debianESPStart, debianESPSize, gpt.EFISystemPartition, ESPPartition, ids.esp},
		{debianRootStart, size - debianRootStart - mib, gpt.LinuxRootX86_64, RootPartition, ids.root},
	}
	t := &gpt.Table{LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize, ProtectiveMBR: true, GUID: ids.disk}
	for i, p := range parts {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: i + 1, Start: uint64(p.start / sectorSize), End: uint64((p.start+p.size)/sectorSize - 1),
			Type: p.typ, Name: p.name, GUID: p.guid,
		})
	}
	return t
}

// mke2fsConf replaces the build host's /etc/mke2fs.conf, so that the file
// system depends on the image's inputs only. Its ext4 features are Debian
// 12's: none that GRUB 2.06 cannot read (e2fsprogs 1.47's upstream
// defaults add orphan_file, which GRUB 2.06 refuses).
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`

// writeDebianDisk creates the raw image at name (which must not exist):
// the GPT; GRUB's boot code in the MBR and core.img in the BIOS boot
// partition; the ESP, made with mkfs.vfat and filled with mtools; and the
// root file system, made from the directory root by mkfs.ext4 -d right
// where it belongs in the image. Nothing is mounted and no loop device is
// used.
func writeDebianDisk(ctx context.Context, name string, size int64, epoch time.Time, ids debianIDs, root string, g grubImages) error {
	d, err := diskfs.Create(name, size, diskfs.SectorSize512)
	if err != nil {
		return fmt.Errorf("osimage: create %s: %w", name, err)
	}
	err = d.Partition(debianTable(ids, size))
	if cerr := d.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("osimage: write GPT: %w", err)
	}
	if err := writeAt(name, g.mbr, 0); err != nil {
		return err
	}
	if err := writeAt(name, g.core, debianBIOSBootStart); err != nil {
		return err
	}
	if err := makeESP(ctx, name, ids, g.efi); err != nil {
		return err
	}
	return makeRootFS(ctx, name, size-debianRootStart-mib, epoch, ids, root)
}

func writeAt(name string, b []byte, off int64) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return fmt.Errorf("osimage: write %s at %d: %w", name, off, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	return nil
}

// makeESP formats the ESP as FAT32 with 512-byte clusters, writes
// EFI/BOOT/BOOTX64.EFI, the path firmware boots from a disk it has no
// boot entry for (and the one rackboot's agent makes an entry for), and
// sets every time stamp to the FAT epoch.
func makeESP(ctx context.Context, name string, ids debianIDs, efi []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".bootx64-*.efi")
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(efi)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	first := strconv.Itoa(debianESPStart / sectorSize)
	img := fmt.Sprintf("%s@@%d", name, debianESPStart)
	steps := [][]string{
		{"mkfs.vfat", "-F", "32", "-S", "512", "-s", "1", "-n", "ESP", "-i", fmt.Sprintf("%08X", ids.espSerial),
			"-h", first, "--offset", first, name, strconv.Itoa(debianESPSize / 1024)},
		{"mmd", "-i", img, "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", img, tmp.Name(), "::/EFI/BOOT/BOOTX64.EFI"},
	}
	for _, s := range steps {
		// mtools checks that a FAT's size fits a floppy or hard disk
		// geometry, which a file system in a partition need not.
		if err := run(ctx, []string{"MTOOLS_SKIP_CHECK=1"}, s...); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer f.Close()
	v, err := openFAT(f, debianESPStart)
	if err != nil {
		return err
	}
	if err := v.fixTimes(); err != nil {
		return err
	}
	return f.Close()
}

// makeRootFS creates the ext4 root file system of size bytes from the
// directory root at its offset in the image, then makes its inodes depend
// on the content only: mkfs.ext4 -d copies every file's change and access
// times from the build host, where they are the time of the build, and
// mmdebstrap leaves the modification times of what maintainer scripts
// wrote at that time too. Change and access times become epoch, and
// modification times later than epoch become epoch, with debugfs (no
// kernel is involved, so nothing moves them again). The UUIDs, the hash
// seed and the file system's own times come from the inputs.
func makeRootFS(ctx context.Context, name string, size int64, epoch time.Time, ids debianIDs, root string) error {
	conf := filepath.Join(filepath.Dir(name), "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	env := []string{"MKE2FS_CONFIG=" + conf, "E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(epoch.Unix(), 10)}
	err := run(ctx, env, "mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "root", "-U", ids.rootFS,
		"-E", fmt.Sprintf("offset=%d,hash_seed=%s,lazy_itable_init=0,lazy_journal_init=0,nodiscard,root_owner=0:0", debianRootStart, ids.rootFS),
		"-d", root, name, strconv.FormatInt(size/4096, 10))
	if err != nil {
		return err
	}
	cmds, err := timeCommands(root, epoch)
	if err != nil {
		return err
	}
	script := filepath.Join(filepath.Dir(name), "debugfs.cmd")
	if err := os.WriteFile(script, []byte(cmds), 0o644); err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	fsImage := fmt.Sprintf("%s?offset=%d", name, debianRootStart)
	if err := debugfs(ctx, env, script, fsImage); err != nil {
		return err
	}
	// debugfs stamped the superblock with the time it closed the file
	// system.
	if err := setExt4WriteTime(name, debianRootStart, epoch); err != nil {
		return err
	}
	// The image never leaves here with a file system e2fsck would fix.
	return run(ctx, env, "e2fsck", "-f", "-n", fsImage)
}

// timeCommands returns the debugfs commands that set the times of every
// file under root in the file system made from it.
func timeCommands(root string, epoch time.Time) (string, error) {
	var b strings.Builder
	at := "@" + strconv.FormatInt(epoch.Unix(), 10)
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		// debugfs reads its commands a line at a time and takes a
		// double-quoted argument literally, backslashes included
		// (systemd's unit names escape with them).
		if strings.ContainsAny(name, "\"\n") {
			return fmt.Errorf("%q: debugfs cannot name this file", name)
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "sif \"%s\" ctime %s\nsif \"%s\" atime %s\n", name, at, name, at)
		if info.ModTime().After(epoch) {
			fmt.Fprintf(&b, "sif \"%s\" mtime %s\n", name, at)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("osimage: %w", err)
	}
	return b.String(), nil
}

// debugfs runs the commands of script on the file system image fsImage,
// with env added to the environment.
// debugfs reports a failed command on its output only, after the echo of
// the command ("debugfs: sif ..."): any other line is an error.
func debugfs(ctx context.Context, env []string, script, fsImage string) error {
	bin, err := lookPath("debugfs")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "-w", "-f", script, fsImage)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("osimage: debugfs: %w: %s", err, lastLines(string(out), 20))
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasPrefix(l, "debugfs") {
			return fmt.Errorf("osimage: debugfs: %s", l)
		}
	}
	return nil
}

// run runs a host tool with env added to this process's environment; its
// error carries the tool's output.
func run(ctx context.Context, env []string, args ...string) error {
	bin, err := lookPath(args[0])
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("osimage: %s: %w: %s", args[0], err, lastLines(string(out), 20))
	}
	return nil
}

// lastLines returns the last n lines of s, for error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ext4 superblock fields (Linux Documentation/filesystems/ext4, "Super
// Block"), from the superblock's start, 1024 bytes into the file system.
const (
	ext4SuperOffset   = 1024
	ext4WriteTime     = 0x30  // s_wtime, low 32 bits
	ext4Magic         = 0x38  // s_magic, 0xef53
	ext4ROCompat      = 0x64  // s_feature_ro_compat
	ext4WriteTimeHigh = 0x274 // s_wtime_hi, bits 32 to 39
	ext4Checksum      = 0x3fc // s_checksum, crc32c of what precedes it
	ext4MetadataCsum  = 0x400 // RO_COMPAT_METADATA_CSUM
)

// setExt4WriteTime sets the last write time of the ext4 file system at
// byte off of the file name, and the superblock's checksum.
func setExt4WriteTime(name string, off int64, t time.Time) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, off+ext4SuperOffset); err != nil {
		return fmt.Errorf("osimage: ext4 superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(sb[ext4Magic:]) != 0xef53 {
		return errors.New("osimage: no ext4 superblock")
	}
	le.PutUint32(sb[ext4WriteTime:], uint32(t.Unix()))
	sb[ext4WriteTimeHigh] = byte(t.Unix() >> 32)
	if le.Uint32(sb[ext4ROCompat:])&ext4MetadataCsum != 0 {
		// The kernel's and e2fsprogs' crc32c: seeded with ~0, not
		// inverted at the end (hash/crc32 inverts at both ends).
		le.PutUint32(sb[ext4Checksum:], ^crc32.Checksum(sb[:ext4Checksum], crc32.MakeTable(crc32.Castagnoli)))
	}
	if _, err := f.WriteAt(sb, off+ext4SuperOffset); err != nil {
		return fmt.Errorf("osimage: ext4 superblock: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	return nil
}
