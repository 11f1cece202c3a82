package imaging

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// loopTries bounds the attempts to bind a free loop device: another
// process may take the one LOOP_CTL_GET_FREE named before we bind it.
const loopTries = 3

// attachLoop binds a free loop device to the n bytes at off of the file
// or block device at path, with logical sectors of sectorSize bytes, and
// returns it open. The device detaches itself when it is closed for the
// last time (LO_FLAGS_AUTOCLEAR), so a failed install leaves none bound.
// LOOP_CONFIGURE needs Linux 5.8 or later.
func attachLoop(path string, off, n int64, sectorSize int) (*os.File, error) {
	ctl, err := os.OpenFile(loopControl, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("loop device: %w", err)
	}
	defer ctl.Close()
	// Opened without O_EXCL: the installer's own exclusive hold on the
	// disk allows it, and the loop driver reads and writes through this
	// descriptor's page cache, the disk's.
	backing, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("loop device: open %s: %w", path, err)
	}
	defer backing.Close()
	cfg := unix.LoopConfig{
		Fd:   uint32(backing.Fd()),
		Size: uint32(sectorSize), // the kernel's block_size
		Info: unix.LoopInfo64{Offset: uint64(off), Sizelimit: uint64(n), Flags: unix.LO_FLAGS_AUTOCLEAR},
	}
	for try := 1; ; try++ {
		num, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("loop device: LOOP_CTL_GET_FREE: %w", err)
		}
		name := fmt.Sprintf("/dev/loop%d", num)
		dev, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("loop device: %w", err)
		}
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) || try == loopTries {
			return nil, fmt.Errorf("loop device: LOOP_CONFIGURE %s at offset %d, %d bytes of %s: %w", name, off, n, path, err)
		}
	}
}
