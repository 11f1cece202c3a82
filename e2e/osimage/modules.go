package osimage

// initramfsModules are the drivers the OS loads from its initramfs: every disk
// controller a lab machine may have (virtio-blk, virtio-scsi, AHCI and
// PIIX IDE through sd_mod, NVMe), squashfs for the root, and FAT with the
// character sets the kernel's vfat defaults name for the config drive
// and the data partition: code page 437 and, in Debian's configuration,
// the "ascii" I/O charset (without it mounting fails with "IO charset
// ascii not found"); iso8859-1 for mounts that ask for it; ext4 for a
// data partition the installer created ext4 (a module in Debian's kernel),
// with crc32c_generic, which ext4 asks the crypto API for by name (its
// metadata checksums) rather than through a module dependency.
func initramfsModules() []string {
	return []string{
		"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "ata_piix", "nvme", "sd_mod",
		"squashfs", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1", "ext4", "crc32c_generic",
	}
}
