package imaging

import (
	"io"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of w back
// to the device now, without waiting (sync_file_range(2) with
// SYNC_FILE_RANGE_WRITE), when w is a file. Left alone, the kernel keeps
// dirty pages until a threshold (10% of RAM by default), so a multi-GiB
// image is mostly written at the final fsync, after decompression has
// finished; started early, the device works while we decompress and the
// fsync has little left to do. Errors are ignored: the final fsync
// reports any real one.
func startWriteback(w io.WriterAt, off, n int64) {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return
	}
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// punchZeros makes [off, off+n) of the file or block device behind r read
// as zeros without writing them (fallocate(2) FALLOC_FL_ZERO_RANGE: a
// hole in a file, WRITE ZEROES or a discard on a device that has them,
// the kernel's own zero writes otherwise). It reports false when r is no
// file or the file system refuses, and the caller writes the zeros.
func punchZeros(r any, off, n int64) bool {
	f, ok := r.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n) == nil
}
