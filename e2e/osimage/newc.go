package osimage

import (
	"fmt"
	"io"
)

// newcWriter writes a cpio archive in the "new ASCII" (newc) format, the
// one the kernel unpacks as an initramfs (Documentation/driver-api/
// early-userspace/buffer-format.rst): directories, regular files and
// device nodes, owned by root, dated 0.
//
// It is a copy of e2e/lab's unexported writer. initrd's cavaliergopher/cpio
// writer cannot make the /dev/console node a shell-script init needs.
type newcWriter struct {
	w   io.Writer
	ino uint32
	err error
}

// File mode type bits of the newc mode field (from <sys/stat.h>).
const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeChar = 0o020000
)

// newcEntry is one archive member.
type newcEntry struct {
	name      string // relative, without a leading slash
	mode      uint32 // type bits | permissions
	rdevMajor uint32 // device nodes only
	rdevMinor uint32
	data      []byte // regular files only
}

func (c *newcWriter) add(e newcEntry) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if e.mode&0o170000 == modeDir {
		nlink = 2
	}
	// 110-byte header: magic, then 13 fields of 8 hex digits: ino, mode,
	// uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
	// rdevminor, namesize (with the NUL), check (0 for newc).
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rdevMajor, e.rdevMinor, len(e.name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(e.name + "\x00"))
	c.pad(len(hdr) + len(e.name) + 1)
	c.write(e.data)
	c.pad(len(e.data))
}

// close writes the trailer entry that ends the archive.
func (c *newcWriter) close() error {
	c.add(newcEntry{name: "TRAILER!!!"})
	return c.err
}

// pad writes the NULs that align the next field to 4 bytes after n bytes.
func (c *newcWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *newcWriter) write(b []byte) {
	if c.err == nil && len(b) > 0 {
		_, c.err = c.w.Write(b)
	}
}
