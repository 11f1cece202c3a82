// Package imaging owns what rackboot's installer agent does to a disk: pick
// the target disk by rule, refuse it when it is too small or in use, write a
// GPT, stream a verified OS image onto it, create the FAT32 ESP and the
// cloud-init NoCloud config drive (label CIDATA), and keep partitions marked
// preserve byte-for-byte across reinstalls. It marks those partitions on
// the disk (PreservedAttribute, a GPT attribute bit) and refuses, before
// writing anything, a later plan that would lose one, unless the plan has
// WipeData (docs/DESIGN.md, section 6, "Preserved partitions").
//
// Everything works on image files as well as block devices, so the package is
// tested without root on files in a temporary directory. The agent receives a
// Plan from the appliance as JSON and hands it to an Installer; the package
// imports no other rackboot package.
//
// The image stream is a three-stage pipeline: an Opener that can resume an
// HTTP download at a byte offset, a decompressor (zstd, gzip, xz or raw), and
// a writer doing large aligned writes; the stages overlap through a small pool
// of buffers so the slowest one sets the pace. The SHA-256 in a Plan is the
// digest of the image file as published (the compressed bytes), because that
// is what a catalog can state and a user can check with sha256sum; it is
// verified before Stream or Install reports success.
package imaging
