// Package osimage builds the operating systems that rackboot's end-to-end
// suite and demo install. BuildDebian makes a real Debian 12 (DEBIAN.md),
// which the demo and TestDebian install. Build makes the busybox demo OS
// of the fast tests: small but real whole-disk images, made reproducibly
// from Debian packages alone, that boot from disk under UEFI and BIOS and
// report on the serial console what the installer gave them.
//
// A demo OS image is a GPT disk of DiskSize bytes with two partitions:
//
//   - ESPPartition, a FAT32 EFI System Partition holding
//     EFI/BOOT/BOOTX64.EFI, a unified kernel image (the systemd EFI stub
//     with the distribution kernel, a busybox initramfs, the command line
//     and os-release as PE sections), and, for BIOS, SYSLINUX
//     (gptmbr.bin in the MBR, the ESP marked legacy-BIOS-bootable) loading
//     the same kernel and initramfs;
//   - RootPartition, a read-only squashfs root file system with busybox
//     and the OS's init.
//
// The initramfs loads the disk drivers, mounts the root partition and
// switches to it. The root's init prints the marker lines (MarkerOS and
// the others; ParseConsole reads them): its version, the hostname and
// first SSH key from the CIDATA config drive, and the content of hello.txt
// on the partition named "data", which it formats and writes on first
// boot only, so a reinstall that preserved the partition shows what the
// earlier version wrote. Then it powers off.
//
// Build writes the image zstd-compressed, which is what a catalog
// publishes, and reports the SHA-256 of the compressed file. The same
// inputs give the same bytes: timestamps are fixed and every GUID, serial
// number and volume ID is derived from the version name.
package osimage
