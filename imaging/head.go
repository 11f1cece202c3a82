package imaging

import (
	"errors"
	"io"
	"io/fs"
)

// heldHead is the target of a whole-disk image: writes to its first
// len(buf) bytes stay in memory and the rest go to the disk. The head holds
// the image's MBR and GPT; it reaches the disk only after the image has
// been verified and its table extended (flush). Until then the disk keeps
// its old partition table, so a failed or cut install never leaves a table
// that has forgotten a preserved partition, and a bad image is never made
// bootable.
//
// heldHead also satisfies go-diskfs's backend.WritableFile so that the
// image's GPT can be read, extended and written through it.
type heldHead struct {
	buf  []byte
	dev  *diskFile
	size int64 // disk size
}

func newHeldHead(dev *diskFile, size, n int64) *heldHead {
	return &heldHead{buf: make([]byte, min(n, size)), dev: dev, size: size}
}

func (h *heldHead) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(h.buf)) {
		n = copy(h.buf[off:], p)
		p, off = p[n:], off+int64(n)
	}
	if len(p) == 0 {
		return n, nil
	}
	m, err := h.dev.WriteAt(p, off)
	return n + m, err
}

func (h *heldHead) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(h.buf)) {
		n = copy(p, h.buf[off:])
		p, off = p[n:], off+int64(n)
	}
	if len(p) == 0 {
		return n, nil
	}
	m, err := h.dev.ReadAt(p, off)
	return n + m, err
}

// flush writes the head to the disk and syncs.
func (h *heldHead) flush() error {
	if _, err := h.dev.WriteAt(h.buf, 0); err != nil {
		return err
	}
	return h.dev.Sync()
}

func (h *heldHead) Sync() error { return h.dev.Sync() }

// The rest of backend.WritableFile; go-diskfs's GPT code uses only ReadAt,
// WriteAt, Sync, and Seek to the end for the disk size.

func (h *heldHead) Stat() (fs.FileInfo, error) { return h.dev.Stat() }
func (h *heldHead) Close() error               { return nil }
func (h *heldHead) Read([]byte) (int, error) {
	return 0, errors.New("imaging: heldHead supports only ReadAt")
}

func (h *heldHead) Seek(offset int64, whence int) (int64, error) {
	if whence == io.SeekEnd && offset == 0 {
		return h.size, nil
	}
	return 0, errors.New("imaging: heldHead supports only Seek(0, io.SeekEnd)")
}

// Fd lets the stream start writeback of what reaches the disk early.
func (h *heldHead) Fd() uintptr { return h.dev.Fd() }
