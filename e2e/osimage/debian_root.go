package osimage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// BIOSBootPartition is the GPT name of the Debian image's BIOS boot
// partition, which holds GRUB's core.img.
const BIOSBootPartition = "bios-boot"

// debianIDs are the identifiers of one image, derived from its version
// name like the demo images': the same version always gets the same ones.
type debianIDs struct {
	disk, biosBoot, esp, root string // GPT GUIDs, upper case as go-diskfs writes them
	rootFS                    string // the ext4 UUID, lower case as blkid and udev show it
	espSerial                 uint32 // the FAT volume ID
}

func debianIDsOf(version string) debianIDs {
	return debianIDs{
		disk:      nameUUID(version, "disk"),
		biosBoot:  nameUUID(version, BIOSBootPartition),
		esp:       nameUUID(version, ESPPartition),
		root:      nameUUID(version, RootPartition),
		rootFS:    strings.ToLower(nameUUID(version, "rootfs")),
		espSerial: nameSerial(version, "esp"),
	}
}

// rootPartUUID is the root partition's GUID as the kernel's root=PARTUUID=
// and /dev/disk/by-partuuid spell it.
func (ids debianIDs) rootPartUUID() string { return strings.ToLower(ids.root) }

// espUUID is the ESP's volume ID as blkid and fstab spell it.
func (ids debianIDs) espUUID() string {
	return fmt.Sprintf("%04X-%04X", ids.espSerial>>16, ids.espSerial&0xffff)
}

// cloudCfg is /etc/cloud/cloud.cfg.d/90_rackboot.cfg. cloud-init's
// renderer list would pick netplan anyway (ifupdown is not installed);
// naming it keeps a version that adds ifupdown from switching to ENI.
const cloudCfg = `# Written by rackboot's image builder.
# The installer's config drive (NoCloud, a FAT volume labelled CIDATA) or an
# OpenStack config-2 drive is the only source: cloud-init never waits for a
# metadata server on the network.
datasource_list: [ NoCloud, ConfigDrive, None ]
# The host key types Debian 12's sshd offers (its default HostKey list):
# cloud-init 22.4 would make a DSA key too.
ssh_genkeytypes: [ rsa, ecdsa, ed25519 ]
# netplan renders the network configuration for systemd-networkd, as in
# Debian 12's cloud images.
system_info:
  network:
    renderers: [ netplan ]
`

// sshHostKeys is a drop-in for ssh.service. The image has no SSH host
// keys: cloud-init makes them on first boot, before ssh.service starts.
// Where cloud-init finds no data source it does not run at all, and
// Debian's sshd would fail for want of keys; ssh-keygen -A makes the
// missing ones first (it does nothing once cloud-init has made them).
const sshHostKeys = `# Written by rackboot's image builder.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
`

// etcHosts is /etc/hosts: mmdebstrap copies the build host's.
const etcHosts = `127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
`

// fstab is /etc/fstab: the root and the ESP by file system UUID, with
// Debian's options; x-systemd.growfs grows the root file system to its
// partition, as cloud-init's resizefs does, whichever runs first.
func fstab(ids debianIDs) string {
	return fmt.Sprintf(`# <file system> <mount point> <type> <options> <dump> <pass>
UUID=%s / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1
UUID=%s /boot/efi vfat umask=0077 0 1
`, ids.rootFS, ids.espUUID())
}

// debianGRUBCfg is the image's /boot/grub/grub.cfg.
func debianGRUBCfg(version string, ids debianIDs) string {
	return grubCfg("Debian GNU/Linux ("+version+")", debianCmdline(ids.rootPartUUID()))
}

// imageRelease is appended to os-release(5): the fields image builders set
// (IMAGE_ID, IMAGE_VERSION), which hostnamectl shows and by which a booted
// machine tells which image it runs.
func imageRelease(version string) string {
	return fmt.Sprintf("IMAGE_ID=rackboot-debian\nIMAGE_VERSION=%s\n", version)
}

// configureRoot makes the installed packages an image that boots anywhere
// once and configures itself from cloud-init:
//
//   - no SSH host keys (cloud-init makes them on first boot; sshHostKeys
//     when it does not run) and an empty /etc/machine-id (systemd makes
//     one), so no two machines share them;
//   - the hostname "localhost" until cloud-init sets the config drive's,
//     and the build host's /etc/hosts replaced;
//   - LANG=C.UTF-8, which needs no locale generation (cloud-init's locale
//     module would run locale-gen, which is not installed, for any other);
//   - cloud-init's data sources and network renderer (cloudCfg);
//   - fstab by file system UUID; resolv.conf from systemd-resolved;
//   - GRUB's grub.cfg and modules in /boot/grub;
//   - IMAGE_ID and IMAGE_VERSION in os-release;
//   - cfg.Files, last.
//
// Every write goes through os.Root, so a link in the root file system
// never leads a write onto the build host.
func configureRoot(cfg DebianConfig, root string, ids debianIDs) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer r.Close()
	keys, err := fs.Glob(r.FS(), "etc/ssh/ssh_host_*")
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	for _, k := range keys {
		if err := r.Remove(k); err != nil {
			return fmt.Errorf("osimage: %w", err)
		}
	}
	osRel, err := fs.ReadFile(r.FS(), "usr/lib/os-release")
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	if len(osRel) > 0 && osRel[len(osRel)-1] != '\n' {
		osRel = append(osRel, '\n')
	}
	files := []RootFile{
		{Path: "/etc/machine-id", Mode: 0o444},
		{Path: "/etc/hostname", Content: "localhost\n"},
		{Path: "/etc/hosts", Content: etcHosts},
		{Path: "/etc/default/locale", Content: "LANG=C.UTF-8\n"},
		{Path: "/etc/fstab", Content: fstab(ids)},
		{Path: "/etc/cloud/cloud.cfg.d/90_rackboot.cfg", Content: cloudCfg},
		{Path: "/etc/systemd/system/ssh.service.d/90-rackboot-host-keys.conf", Content: sshHostKeys},
		{Path: "/usr/lib/os-release", Content: string(osRel) + imageRelease(cfg.Version)},
		{Path: "/boot/grub/grub.cfg", Content: debianGRUBCfg(cfg.Version, ids)},
	}
	for _, f := range append(files, cfg.Files...) {
		if err := writeRootFile(r, f); err != nil {
			return err
		}
	}
	if err := replace(r, "etc/resolv.conf", func() error {
		return r.Symlink("../run/systemd/resolve/stub-resolv.conf", "etc/resolv.conf")
	}); err != nil {
		return err
	}
	if err := r.MkdirAll("boot/efi", 0o755); err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	return linkGRUBModules(r)
}

// writeRootFile replaces f.Path in r with a regular file.
func writeRootFile(r *os.Root, f RootFile) error {
	name := strings.TrimPrefix(f.Path, "/")
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
	}
	if err := r.MkdirAll(path.Dir(name), 0o755); err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	err := replace(r, name, func() error {
		if err := r.WriteFile(name, []byte(f.Content), mode); err != nil {
			return err
		}
		return r.Chmod(name, mode) // WriteFile's mode passes through the umask
	})
	if err != nil {
		return fmt.Errorf("osimage: write %s: %w", f.Path, err)
	}
	return nil
}

// replace removes name from r if it exists (a link itself, not its
// target) and calls create.
func replace(r *os.Root, name string, create func() error) error {
	if err := r.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("osimage: %w", err)
	}
	if err := create(); err != nil {
		return fmt.Errorf("osimage: %s: %w", name, err)
	}
	return nil
}

// grubPlatforms are GRUB's platforms in the image: BIOS and x86-64 UEFI.
var grubPlatforms = []string{"i386-pc", "x86_64-efi"}

// linkGRUBModules hard-links GRUB's modules and their lists into
// /boot/grub/PLATFORM, where the boot images look for them, as
// grub-install copies them. Links cost no space, and an upgrade of
// grub-pc-bin or grub-efi-amd64-bin replaces the files in /usr/lib/grub
// with new ones, so /boot/grub keeps the modules that match the boot
// images on the disk.
func linkGRUBModules(r *os.Root) error {
	for _, p := range grubPlatforms {
		src := path.Join("usr/lib/grub", p)
		ents, err := fs.ReadDir(r.FS(), src)
		if err != nil {
			return fmt.Errorf("osimage: GRUB modules: %w", err)
		}
		dst := path.Join("boot/grub", p)
		if err := r.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("osimage: %w", err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || (path.Ext(e.Name()) != ".mod" && path.Ext(e.Name()) != ".lst") {
				continue
			}
			if err := r.Link(path.Join(src, e.Name()), path.Join(dst, e.Name())); err != nil {
				return fmt.Errorf("osimage: GRUB modules: %w", err)
			}
		}
	}
	return nil
}

// grubImages are the boot loader's pieces outside the root file system.
type grubImages struct {
	mbr  []byte // boot.img's code for the MBR, pointing at core
	core []byte // core.img for the BIOS boot partition, its block list set
	efi  []byte // EFI/BOOT/BOOTX64.EFI
}

// makeGRUB builds GRUB's boot images with the root file system's own
// grub-mkimage and modules (grub-pc-bin, grub-efi-amd64-bin), in a chroot,
// and sets them up for the image's layout. grub-mkimage's output depends
// on its input only.
func makeGRUB(ctx context.Context, root string, ids debianIDs) (grubImages, error) {
	var g grubImages
	chroot, err := lookPath("chroot")
	if err != nil {
		return g, err
	}
	const dir = "/tmp/rackboot-grub" // in the chroot
	host := filepath.Join(root, dir)
	if err := os.Mkdir(host, 0o700); err != nil {
		return g, fmt.Errorf("osimage: %w", err)
	}
	defer os.RemoveAll(host)
	if err := os.WriteFile(filepath.Join(host, "load.cfg"), []byte(grubLoadCfg(ids.rootFS)), 0o644); err != nil {
		return g, fmt.Errorf("osimage: %w", err)
	}
	for _, img := range []struct {
		format, name string
		modules      []string
		dst          *[]byte
	}{
		{"i386-pc", "core.img", grubBIOSModules, &g.core},
		{"x86_64-efi", "bootx64.efi", grubEFIModules, &g.efi},
	} {
		args := append([]string{root, "grub-mkimage", "-O", img.format, "-o", dir + "/" + img.name,
			"-c", dir + "/load.cfg", "-p", "/boot/grub"}, img.modules...)
		cmd := exec.CommandContext(ctx, chroot, args...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return g, fmt.Errorf("osimage: grub-mkimage -O %s: %w: %s", img.format, err, strings.TrimSpace(string(out)))
		}
		if *img.dst, err = os.ReadFile(filepath.Join(host, img.name)); err != nil {
			return g, fmt.Errorf("osimage: %w", err)
		}
	}
	bootImg, err := os.ReadFile(filepath.Join(root, "usr/lib/grub/i386-pc/boot.img"))
	if err != nil {
		return g, fmt.Errorf("osimage: %w", err)
	}
	if len(g.core) > debianBIOSBootSize {
		return g, fmt.Errorf("osimage: core.img is %d bytes, the BIOS boot partition %d", len(g.core), debianBIOSBootSize)
	}
	if g.mbr, err = patchBootSector(bootImg, debianBIOSBootStart/sectorSize); err != nil {
		return g, err
	}
	return g, patchCore(g.core, debianBIOSBootStart/sectorSize)
}
