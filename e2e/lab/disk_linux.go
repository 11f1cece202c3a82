package lab

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DiskWritten reports whether anything but zeros was ever written to the
// disk image at path: a blank sparse file has no data extent at all
// (SEEK_DATA), and the extents it has are read to see they are zeros.
func DiskWritten(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("lab: %w", err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < fi.Size(); {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return false, nil // no data after off
		}
		if err != nil {
			return false, fmt.Errorf("lab: %s: seek data: %w", path, err)
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return false, fmt.Errorf("lab: %s: seek hole: %w", path, err)
		}
		for p := data; p < hole; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), hole-p)], p)
			if n == 0 && err != nil {
				return false, fmt.Errorf("lab: %s: %w", path, err)
			}
			for _, b := range buf[:n] {
				if b != 0 {
					return true, nil
				}
			}
			p += int64(n)
		}
		off = hole
	}
	return false, nil
}
