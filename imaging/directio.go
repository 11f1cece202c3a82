package imaging

import (
	"io/fs"
	"os"
	"unsafe"
)

// directAlign is the alignment O_DIRECT needs for buffer addresses, file
// offsets and lengths: 4096 covers both logical sector sizes.
const directAlign = 4096

// diskFile is the target disk as the installer writes it: large aligned
// image writes go through a second descriptor opened with O_DIRECT, which
// moves them from our buffers to the device without copying them into the
// page cache, so a multi-GiB image neither fills the installer's RAM with
// dirty pages nor waits for them all at the final fsync. Everything else
// (the GPT, FAT file systems, an unaligned tail) uses the buffered
// descriptor; the kernel keeps the two coherent for non-overlapping
// ranges, and we never write the same range through both at once.
type diskFile struct {
	*os.File
	direct *os.File // nil when O_DIRECT is unavailable (tmpfs) or disabled
}

// WriteAt writes p directly when its address, length and offset are all
// aligned, and through the page cache otherwise.
func (d *diskFile) WriteAt(p []byte, off int64) (int, error) {
	if d.direct != nil && len(p) > 0 && len(p)%directAlign == 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(&p[0]))%directAlign == 0 {
		return d.direct.WriteAt(p, off)
	}
	return d.File.WriteAt(p, off)
}

// Sync flushes the page cache and the device's write cache; the latter
// covers direct writes too.
func (d *diskFile) Sync() error { return d.File.Sync() }

// Close closes the direct descriptor; the buffered one belongs to the
// go-diskfs backend.
func (d *diskFile) Close() error {
	if d.direct == nil {
		return nil
	}
	return d.direct.Close()
}

func (d *diskFile) Stat() (fs.FileInfo, error) { return d.File.Stat() }

// alignedBuffer returns a size-byte buffer whose address is a multiple of
// directAlign, as O_DIRECT requires. (Large Go allocations happen to be
// page aligned, but nothing promises it.)
func alignedBuffer(size int) []byte {
	b := make([]byte, size+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip+size : skip+size]
}
