// Package initrd builds rackboot's installer initramfs: a newc cpio archive
// (gzip or zstd compressed) whose /init is the static rackboot-agent binary,
// with the kernel modules a server needs to reach its disks and its network
// and everything they depend on, taken from a distribution kernel's modules
// directory.
//
// There is no /dev/console device node in the archive (the cpio library
// writes no device numbers): the agent mounts devtmpfs itself and attaches
// its standard streams to /dev/console before it logs anything.
package initrd
