package osimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"
)

func TestDebianTable(t *testing.T) {
	ids := debianIDsOf("debian-12.1")
	tbl := debianTable(ids, DefaultDebianDiskSize)
	type part struct {
		Index      int
		Name       string
		Type       gpt.Type
		GUID       string
		Start, End uint64
	}
	var got []part
	for _, p := range tbl.Partitions {
		got = append(got, part{p.Index, p.Name, p.Type, p.GUID, p.Start, p.End})
	}
	last := uint64(DefaultDebianDiskSize/sectorSize - 2048 - 1) // the last MiB is the backup GPT's
	want := []part{
		{1, "bios-boot", gpt.BIOSBoot, nameUUID("debian-12.1", "bios-boot"), 2048, 4095},
		{2, "esp", gpt.EFISystemPartition, nameUUID("debian-12.1", "esp"), 4096, 262143},
		{3, "root-x86-64", gpt.LinuxRootX86_64, nameUUID("debian-12.1", "root-x86-64"), 262144, last},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	if tbl.GUID != ids.disk || !tbl.ProtectiveMBR {
		t.Errorf("disk GUID %s, protective MBR %v", tbl.GUID, tbl.ProtectiveMBR)
	}
	if other := debianIDsOf("debian-12.2"); other.root == ids.root || other.rootFS == ids.rootFS || other.espSerial == ids.espSerial {
		t.Error("two versions share identifiers")
	}
}

func TestDebianIDs(t *testing.T) {
	ids := debianIDsOf("debian-12.1")
	if ids.rootFS != strings.ToLower(ids.rootFS) || ids.rootPartUUID() != strings.ToLower(ids.root) {
		t.Errorf("UUIDs %s, %s: blkid and udev spell them in lower case", ids.rootFS, ids.rootPartUUID())
	}
	if u := ids.espUUID(); len(u) != 9 || u[4] != '-' || u != strings.ToUpper(u) {
		t.Errorf("ESP UUID %q: want XXXX-XXXX in upper case, as blkid spells FAT volume IDs", u)
	}
	fst := fstab(ids)
	for _, w := range []string{"UUID=" + ids.rootFS + " / ext4 ", "UUID=" + ids.espUUID() + " /boot/efi vfat "} {
		if !strings.Contains(fst, w) {
			t.Errorf("fstab lacks %q:\n%s", w, fst)
		}
	}
	cfg := grubCfg("Debian", debianCmdline(ids.rootPartUUID()))
	if !strings.Contains(cfg, "linux /vmlinuz root=PARTUUID="+ids.rootPartUUID()+" ro console=tty0 console=ttyS0,115200\n") ||
		!strings.Contains(cfg, "initrd /initrd.img\n") {
		t.Errorf("grub.cfg:\n%s", cfg)
	}
	if got, want := grubLoadCfg(ids.rootFS), "search.fs_uuid "+ids.rootFS+" root\nset prefix=($root)/boot/grub\n"; got != want {
		t.Errorf("load.cfg = %q, want %q", got, want)
	}
}

// fakeBootImg is a boot sector shaped like GRUB 2.06's boot.img: the
// drive check jump at 0x66 and the boot signature.
func fakeBootImg() []byte {
	b := bytes.Repeat([]byte{0xcc}, sectorSize)
	b[bootDriveCheck], b[bootDriveCheck+1] = 0xeb, 0x05
	b[510], b[511] = 0x55, 0xaa
	return b
}

// fakeCore is a core.img of n sectors whose block list grub-mkimage
// filled in: start 2, n-1 sectors, segment 0x820.
func fakeCore(n int) []byte {
	c := bytes.Repeat([]byte{0xab}, n*sectorSize-100)
	binary.LittleEndian.PutUint64(c[coreBlockStart:], 2)
	binary.LittleEndian.PutUint16(c[coreBlockLen:], uint16(n-1))
	binary.LittleEndian.PutUint16(c[coreBlockLen+2:], 0x820)
	return c
}

func TestPatchBootSector(t *testing.T) {
	in := fakeBootImg()
	out, err := patchBootSector(in, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != bootCodeSize {
		t.Fatalf("%d bytes, want %d: the disk signature and partition table stay the MBR's", len(out), bootCodeSize)
	}
	if got := binary.LittleEndian.Uint64(out[bootKernelSector:]); got != 2048 {
		t.Errorf("kernel sector %d, want 2048", got)
	}
	if out[bootDrive] != 0xff || out[bootDriveCheck] != 0x90 || out[bootDriveCheck+1] != 0x90 {
		t.Errorf("boot drive %#x, drive check % x: want 0xff and two NOPs", out[bootDrive], out[bootDriveCheck:bootDriveCheck+2])
	}
	if in[bootDriveCheck] != 0xeb {
		t.Error("the input was modified")
	}
	bad := fakeBootImg()
	bad[bootDriveCheck] = 0
	for name, b := range map[string][]byte{"short": in[:400], "no signature": in[:511], "not GRUB": bad} {
		if _, err := patchBootSector(b, 2048); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPatchCore(t *testing.T) {
	core := fakeCore(55)
	if err := patchCore(core, 2048); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if start, n, seg := le.Uint64(core[coreBlockStart:]), le.Uint16(core[coreBlockLen:]), le.Uint16(core[coreBlockLen+2:]); start != 2049 || n != 54 || seg != 0x820 {
		t.Errorf("block list: start %d, %d sectors, segment %#x; want 2049, 54, 0x820", start, n, seg)
	}
	wrong := fakeCore(55)
	le.PutUint16(wrong[coreBlockLen:], 12)
	for name, c := range map[string][]byte{"short": make([]byte, 600), "length": wrong} {
		if err := patchCore(c, 2048); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDebianConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  DebianConfig
		want string // in the error; empty: valid
	}{
		{"minimal", DebianConfig{Version: "debian-12.1"}, ""},
		{"everything", DebianConfig{Version: "debian-12.2", Packages: []string{"tree", "libc++1"}, DiskSize: 2048 * mib,
			Files: []RootFile{{Path: "/etc/motd", Content: "hi\n"}, {Path: "/usr/local/bin/x", Mode: 0o755}}}, ""},
		{"version", DebianConfig{Version: "Debian 12"}, "version"},
		{"package with a comma", DebianConfig{Version: "d", Packages: []string{"a,b"}}, "package"},
		{"package option", DebianConfig{Version: "d", Packages: []string{"--foo"}}, "package"},
		{"relative file", DebianConfig{Version: "d", Files: []RootFile{{Path: "etc/motd"}}}, "file"},
		{"unclean file", DebianConfig{Version: "d", Files: []RootFile{{Path: "/etc/../motd"}}}, "file"},
		{"root", DebianConfig{Version: "d", Files: []RootFile{{Path: "/"}}}, "file"},
		{"file twice", DebianConfig{Version: "d", Files: []RootFile{{Path: "/a"}, {Path: "/a"}}}, "twice"},
		{"setuid", DebianConfig{Version: "d", Files: []RootFile{{Path: "/a", Mode: fs.ModeSetuid | 0o755}}}, "mode"},
		{"small disk", DebianConfig{Version: "d", DiskSize: 512 * mib}, "disk size"},
		{"odd disk", DebianConfig{Version: "d", DiskSize: 2048*mib + 512}, "disk size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("validate() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestMmdebstrapArgs(t *testing.T) {
	cfg := DebianConfig{Version: "debian-12.2", Packages: []string{"tree", "sudo"}, Mirror: "http://mirror.example/debian"}
	got := mmdebstrapArgs(cfg, "/tmp/root", false)
	want := []string{"--mode=root", "--format=directory", "--variant=minbase",
		"--include=" + strings.Join(append(DebianPackages(), "tree"), ","),
		`--setup-hook=mkdir -p "$1/etc/initramfs-tools/conf.d" && printf '%s' '` + initramfsConf + `' > "$1/etc/initramfs-tools/conf.d/rackboot"`,
		"bookworm", "/tmp/root",
		"deb http://mirror.example/debian bookworm main",
		"deb http://mirror.example/debian bookworm-updates main",
		"deb http://deb.debian.org/debian-security bookworm-security main"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("build (-want +got):\n%s", diff)
	}
	if strings.Contains(initramfsConf, "'") {
		t.Error("initramfsConf has a single quote: the setup hook quotes it with them")
	}
	sim := mmdebstrapArgs(cfg, os.DevNull, true)
	if !slices.Contains(sim, "--simulate") || !slices.Contains(sim, "--format=null") || !slices.Contains(sim, want[3]) || slices.Contains(sim, want[4]) {
		t.Errorf("simulate: %q", sim)
	}
}

func TestParseSimulation(t *testing.T) {
	out := `I: running apt-get update...
Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]
Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.11/stable [amd64])
Conf gcc-12-base (12.2.0-14+deb12u1 Debian:12.11/stable [amd64])
Inst libc6 (2.36-9+deb12u10 Debian:12.11/stable [amd64]) []
Inst base-files [12.4] (12.4+deb12u11 Debian:12.11/stable [amd64])
Inst libpam-modules (1.5.2-6+deb12u1 Debian-Security:12/stable-security [amd64])
Remv lsb-base (11.6)
`
	want := map[string]string{
		"gcc-12-base": "12.2.0-14+deb12u1", "libc6": "2.36-9+deb12u10", "base-files": "12.4+deb12u11",
		"libpam-modules": "1.5.2-6+deb12u1",
	}
	if diff := cmp.Diff(want, parseSimulation([]byte(out))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDebianKey(t *testing.T) {
	for _, r := range debianRequirements() {
		if _, err := lookPath(r.command); err != nil {
			t.Skipf("the key covers the host's tools: %v", err)
		}
	}
	pkgs := map[string]string{"libc6": "2.36-9+deb12u10", "systemd": "252.38-1~deb12u1"}
	base := DebianConfig{Version: "debian-12.1"}
	key := func(cfg DebianConfig, pkgs map[string]string) string {
		t.Helper()
		k, err := debianKey(cfg, pkgs)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := key(base, pkgs)
	if again := key(DebianConfig{Version: "debian-12.1", CacheDir: "/elsewhere", Log: nil}, map[string]string{"systemd": "252.38-1~deb12u1", "libc6": "2.36-9+deb12u10"}); again != k {
		t.Error("the same inputs give another key")
	}
	newer := map[string]string{"libc6": "2.36-9+deb12u11", "systemd": "252.38-1~deb12u1"}
	for name, other := range map[string]string{
		"version":    key(DebianConfig{Version: "debian-12.2"}, pkgs),
		"a package":  key(base, newer),
		"packages":   key(DebianConfig{Version: "debian-12.1", Packages: []string{"tree"}}, pkgs),
		"a file":     key(DebianConfig{Version: "debian-12.1", Files: []RootFile{{Path: "/etc/motd", Content: "a"}}}, pkgs),
		"file mode":  key(DebianConfig{Version: "debian-12.1", Files: []RootFile{{Path: "/etc/motd", Content: "a", Mode: 0o600}}}, pkgs),
		"disk size":  key(DebianConfig{Version: "debian-12.1", DiskSize: 2048 * mib}, pkgs),
		"epoch":      key(DebianConfig{Version: "debian-12.1", Epoch: DefaultEpoch.Add(time.Hour)}, pkgs),
		"the mirror": key(DebianConfig{Version: "debian-12.1", Mirror: "http://mirror.example/debian"}, pkgs),
	} {
		if other == k {
			t.Errorf("another %s gives the same key", name)
		}
	}
}

// fakeRoot makes a small tree shaped like what mmdebstrap leaves, enough
// for configureRoot and writeDebianDisk.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	files := map[string]string{
		"usr/lib/os-release":                                         "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"",
		"etc/ssh/ssh_host_ed25519_key":                               "secret",
		"etc/ssh/ssh_host_ed25519_key.pub":                           "public",
		"etc/ssh/sshd_config":                                        "# config\n",
		"etc/hostname":                                               "buildhost\n",
		"etc/machine-id":                                             "0123456789abcdef0123456789abcdef\n",
		"usr/lib/grub/i386-pc/boot.img":                              string(fakeBootImg()),
		"usr/lib/grub/i386-pc/ext2.mod":                              "ext2",
		"usr/lib/grub/i386-pc/moddep.lst":                            "ext2: fshelp\n",
		"usr/lib/grub/x86_64-efi/ext2.mod":                           "ext2 efi",
		"usr/lib/grub/x86_64-efi/config.h":                           "#define X\n",
		"usr/lib/systemd/system/system-systemd\\x2dcryptsetup.slice": "[Unit]\n",
		"usr/share/doc/a file with spaces":                           "spaces\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"etc/os-release": "../usr/lib/os-release", "etc/resolv.conf": "/etc/hostname", "vmlinuz": "boot/vmlinuz-6.1.0-57-amd64"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestConfigureRoot(t *testing.T) {
	root := fakeRoot(t)
	// A link out of the root: a write through it would land on this
	// machine.
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "etc/localtime")); err != nil {
		t.Fatal(err)
	}
	cfg := DebianConfig{Version: "debian-12.2", Files: []RootFile{
		{Path: "/etc/localtime", Content: "UTC\n"},
		{Path: "/etc/rackboot/marker", Mode: 0o600, Content: "12.2\n"},
	}}
	ids := debianIDsOf(cfg.Version)
	if err := configureRoot(cfg, root, ids); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "host file\n" {
		t.Errorf("the file outside the root now holds %q (%v)", b, err)
	}
	want := map[string]struct {
		mode    fs.FileMode
		content string
	}{
		"etc/localtime":                         {0o644, "UTC\n"},
		"etc/rackboot/marker":                   {0o600, "12.2\n"},
		"etc/machine-id":                        {0o444, ""},
		"etc/hostname":                          {0o644, "localhost\n"},
		"etc/hosts":                             {0o644, etcHosts},
		"etc/default/locale":                    {0o644, "LANG=C.UTF-8\n"},
		"etc/fstab":                             {0o644, fstab(ids)},
		"etc/ssh/sshd_config":                   {0o644, "# config\n"},
		"boot/grub/grub.cfg":                    {0o644, grubCfg("Debian GNU/Linux (debian-12.2)", debianCmdline(ids.rootPartUUID()))},
		"usr/lib/os-release":                    {0o644, "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nIMAGE_ID=rackboot-debian\nIMAGE_VERSION=debian-12.2\n"},
		"etc/cloud/cloud.cfg.d/90_rackboot.cfg": {0o644, cloudCfg},
		"etc/systemd/system/ssh.service.d/90-rackboot-host-keys.conf": {0o644, sshHostKeys},
	}
	for name, w := range want {
		p := filepath.Join(root, name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		b, _ := os.ReadFile(p)
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != w.mode || string(b) != w.content {
			t.Errorf("%s: %v %q, want a regular file %v %q", name, fi.Mode(), b, w.mode, w.content)
		}
	}
	if keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(keys) > 0 {
		t.Errorf("host keys left: %v", keys)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/resolv.conf")); err != nil || l != "../run/systemd/resolve/stub-resolv.conf" {
		t.Errorf("resolv.conf -> %q (%v)", l, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "boot/efi")); err != nil || !fi.IsDir() {
		t.Errorf("/boot/efi: %v", err)
	}
	// Modules and lists are linked, other files of the GRUB directory
	// are not.
	for _, f := range []string{"i386-pc/ext2.mod", "i386-pc/moddep.lst", "x86_64-efi/ext2.mod"} {
		a, err1 := os.Stat(filepath.Join(root, "usr/lib/grub", f))
		b, err2 := os.Stat(filepath.Join(root, "boot/grub", f))
		if err := errors.Join(err1, err2); err != nil || !os.SameFile(a, b) {
			t.Errorf("boot/grub/%s is not a link of usr/lib/grub/%s (%v)", f, f, err)
		}
	}
	for _, f := range []string{"i386-pc/boot.img", "x86_64-efi/config.h"} {
		if _, err := os.Lstat(filepath.Join(root, "boot/grub", f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("boot/grub/%s: %v, want none", f, err)
		}
	}
}

// TestWriteDebianDisk assembles a small disk from a fake root file system
// and fake GRUB images, as BuildDebian does from the real ones, checks it
// with the file systems' own tools, and builds it again from a copy of the
// tree made later (other change and access times) to see the same bytes.
func TestWriteDebianDisk(t *testing.T) {
	for _, r := range debianRequirements() {
		if r.command == "mmdebstrap" || r.command == "chroot" || r.command == "dpkg-query" {
			continue
		}
		if _, err := lookPath(r.command); err != nil {
			t.Skip(err)
		}
	}
	const size = 256 * mib
	ids := debianIDsOf("debian-12.1")
	epoch := DefaultEpoch
	root := fakeRoot(t)
	mbr, err := patchBootSector(fakeBootImg(), debianBIOSBootStart/sectorSize)
	if err != nil {
		t.Fatal(err)
	}
	core := fakeCore(3)
	if err := patchCore(core, debianBIOSBootStart/sectorSize); err != nil {
		t.Fatal(err)
	}
	g := grubImages{mbr: mbr, core: core, efi: bytes.Repeat([]byte("EFI"), 10000)}
	name := filepath.Join(t.TempDir(), "disk.img")
	if err := writeDebianDisk(t.Context(), name, size, epoch, ids, root, g); err != nil {
		t.Fatal(err)
	}

	img, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(img) != size {
		t.Fatalf("%d bytes, want %d", len(img), size)
	}
	if !bytes.Equal(img[:bootCodeSize], mbr) || img[450] != 0xee || img[510] != 0x55 {
		t.Error("the MBR is not GRUB's boot code with a protective partition entry")
	}
	if !bytes.Equal(img[debianBIOSBootStart:debianBIOSBootStart+len(core)], core) {
		t.Error("core.img is not at the start of the BIOS boot partition")
	}
	if sgdisk, err := lookPath("sgdisk"); err == nil {
		if out, err := exec.Command(sgdisk, "-v", name).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("sgdisk -v: %v\n%s", err, out)
		}
	}

	d, err := diskfs.Open(name, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	esp, err := d.GetFilesystem(2)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fs.ReadFile(esp, "EFI/BOOT/BOOTX64.EFI"); err != nil || !bytes.Equal(got, g.efi) {
		t.Errorf("EFI/BOOT/BOOTX64.EFI: %d bytes (%v), want %d", len(got), err, len(g.efi))
	}
	espFile := filepath.Join(t.TempDir(), "esp.img")
	if err := os.WriteFile(espFile, img[debianESPStart:debianESPStart+debianESPSize], 0o644); err != nil {
		t.Fatal(err)
	}
	if fsck, err := lookPath("fsck.vfat"); err == nil {
		if out, err := exec.Command(fsck, "-n", espFile).CombinedOutput(); err != nil {
			t.Errorf("fsck.vfat -n: %v\n%s", err, out)
		}
	}
	v, err := openFAT(bytes.NewReader(img), debianESPStart)
	if err != nil {
		t.Fatal(err)
	}
	if hidden, id := binary.LittleEndian.Uint32(v.bs[bpbHiddSec:]), binary.LittleEndian.Uint32(v.bs[bsVolID:]); hidden != debianESPStart/sectorSize || id != ids.espSerial || v.clusters() < 65525 {
		t.Errorf("ESP: hidden sectors %d, volume ID %#x, %d clusters", hidden, id, v.clusters())
	}

	fsImage := name + "?offset=" + strconv.Itoa(debianRootStart)
	debugfsOut := func(req string) string {
		t.Helper()
		bin, _ := lookPath("debugfs")
		out, err := exec.Command(bin, "-R", req, fsImage).Output()
		if err != nil {
			t.Fatalf("debugfs -R %q: %v", req, err)
		}
		return string(out)
	}
	for _, f := range []string{"/etc/hostname", "/usr/lib/systemd/system/system-systemd\\x2dcryptsetup.slice", "/usr/share/doc/a file with spaces", "/vmlinuz", "/usr/lib"} {
		st := debugfsOut(`stat "` + f + `"`)
		for _, field := range []string{"ctime", "atime", "mtime", "crtime"} {
			if !strings.Contains(st, field+": 0x682bc600:00000000") { // DefaultEpoch
				t.Errorf("%s: %s is not the epoch:\n%s", f, field, st)
			}
		}
	}
	dump, err := exec.Command(mustLookPath(t, "dumpe2fs"), "-h", fsImage).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Filesystem UUID:          " + ids.rootFS, "Filesystem volume name:   root", "Last write time:          Tue May 20 00:00:00 2025"} {
		if !strings.Contains(string(dump), w) {
			t.Errorf("dumpe2fs -h lacks %q:\n%s", w, dump)
		}
	}

	// A copy of the tree made now has other change and access times on
	// this machine; the image must not show it.
	copied := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", root, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	now := time.Now()
	if err := os.Chtimes(filepath.Join(copied, "etc/hostname"), now, now); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(t.TempDir(), "disk.img")
	if err := writeDebianDisk(t.Context(), again, size, epoch, ids, copied, g); err != nil {
		t.Fatal(err)
	}
	sumA, errA := fileSHA256(name)
	sumB, errB := fileSHA256(again)
	if err := errors.Join(errA, errB); err != nil || sumA != sumB {
		t.Errorf("two builds from the same tree differ: %s, %s (%v)", sumA, sumB, err)
	}
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := lookPath(name)
	if err != nil {
		t.Skip(err)
	}
	return p
}

func TestCheckDebianHost(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root")
	}
	if err := CheckDebianHost(); err == nil || !strings.Contains(err.Error(), "not root") {
		t.Errorf("CheckDebianHost() = %v, want it to say this is not root", err)
	}
}
