package imaging

import (
	"errors"

	"github.com/rackboot/rackboot/agentapi"
)

// Sentinel errors, checked with errors.Is. Each failure wraps one of them
// with the details (which disk, which partition, which sizes).
var (
	// ErrNoDisk means no candidate disk matched the plan's disk rule.
	ErrNoDisk = errors.New("imaging: no matching disk")
	// ErrDiskTooSmall means the disk cannot hold the plan's layout or image.
	// Nothing has been written when it is returned.
	ErrDiskTooSmall = errors.New("imaging: disk too small")
	// ErrDiskBusy means the disk or one of its partitions is mounted, used
	// as swap, held by another device (LVM, md, dm-crypt) or opened
	// exclusively by someone else. Nothing has been written.
	ErrDiskBusy = errors.New("imaging: disk busy")
	// ErrLayoutChanged means a partition marked preserve exists on the disk
	// but the new layout cannot keep it where it is with the same size.
	// Nothing has been written when it is returned.
	ErrLayoutChanged = errors.New("imaging: layout changed, cannot preserve partition")
	// ErrChecksum means the image's SHA-256 did not match the plan. The
	// install must not be reported done.
	ErrChecksum = errors.New("imaging: image checksum mismatch")
	// ErrImageTooLarge means the decompressed image does not fit where it
	// was to be written. Nothing past the limit has been written.
	ErrImageTooLarge = errors.New("imaging: image larger than its target")
	// ErrInvalidPlan means the plan itself is inconsistent.
	ErrInvalidPlan = agentapi.ErrInvalidPlan
)
