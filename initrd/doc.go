// Package initrd builds rackboot's installer initramfs: a newc cpio archive
// (gzip or zstd compressed) whose /init is the static rackboot-agent binary,
// with the kernel modules a server needs to reach its disks and its network
// and everything they depend on, taken from a distribution kernel's modules
// directory, and the few programs of the build host the agent runs
// (mkfs.xfs) with the shared libraries and the dynamic loader they need.
//
// The archive starts with a tiny hand-written newc archive holding
// /dev/console and /dev/null (the cpio library writes no device numbers);
// the kernel unpacks concatenated archives in order.
package initrd
