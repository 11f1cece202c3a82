package lab

import (
	"fmt"
	"io"
)

// NewcWriter writes a cpio archive in the "new ASCII" (newc) format, the
// one the kernel unpacks as an initramfs (Documentation/driver-api/
// early-userspace/buffer-format.rst). It writes only what an initramfs
// needs: directories, regular files and device nodes, owned by root.
//
// lab's test initramfs and osimage's OS initramfs both use it; initrd's
// cpio library cannot write the /dev/console node a shell-script init needs.
type NewcWriter struct {
	w   io.Writer
	ino uint32
	err error
}

// File mode type bits of the newc mode field (from <sys/stat.h>).
const (
	ModeDir  = 0o040000
	ModeReg  = 0o100000
	ModeChar = 0o020000
)

// NewcEntry is one archive member.
type NewcEntry struct {
	Name         string // relative, without a leading slash
	Mode         uint32 // type bits | permissions
	RdevMajor    uint32 // device nodes only
	RdevMinor    uint32
	Data         []byte // regular files only
	MTime, NLink uint32
}

// NewNewcWriter returns a writer of an archive to w; call Close to end it.
func NewNewcWriter(w io.Writer) *NewcWriter { return &NewcWriter{w: w} }

// Add appends one member; the first error is kept for Close.
func (c *NewcWriter) Add(e NewcEntry) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := e.NLink
	if nlink == 0 {
		nlink = 1
		if e.Mode&0o170000 == ModeDir {
			nlink = 2
		}
	}
	// 110-byte header: magic, then 13 fields of 8 hex digits: ino, mode,
	// uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
	// rdevminor, namesize (with the NUL), check (0 for newc).
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, e.Mode, 0, 0, nlink, e.MTime, len(e.Data), 0, 0, e.RdevMajor, e.RdevMinor, len(e.Name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(e.Name + "\x00"))
	c.pad(len(hdr) + len(e.Name) + 1)
	c.write(e.Data)
	c.pad(len(e.Data))
}

// Close writes the trailer entry that ends the archive.
func (c *NewcWriter) Close() error {
	c.Add(NewcEntry{Name: "TRAILER!!!"})
	return c.err
}

// pad writes the NULs that align the next field to 4 bytes after n bytes.
func (c *NewcWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *NewcWriter) write(b []byte) {
	if c.err == nil && len(b) > 0 {
		_, c.err = c.w.Write(b)
	}
}
