package initrd

import (
	"fmt"
	"io"
	"strings"
)

// device is a character device node the archive must hold before /init
// runs: the kernel opens /dev/console for PID 1's standard streams, and the
// Go runtime aborts at start when those are closed.
type device struct {
	name         string
	major, minor int
}

var devices = []device{{"dev/console", 5, 1}, {"dev/null", 1, 3}}

// writeDevices writes a small newc archive holding the device nodes. The
// cpio library cannot encode device numbers; the kernel unpacks
// concatenated archives in order, so this one simply comes first.
func writeDevices(w io.Writer) error {
	var b strings.Builder
	ino := 1
	entry := func(name string, mode, major, minor int) {
		// newc (SVR4 "070701"): thirteen 8-digit hex fields, then the
		// NUL-terminated name, padded to 4 bytes.
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, 0, 0, 0, major, minor, len(name)+1, 0)
		b.WriteString(name)
		b.WriteByte(0)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		ino++
	}
	entry("dev", 0o040755, 0, 0)
	for _, d := range devices {
		entry(d.name, 0o020600, d.major, d.minor)
	}
	entry("TRAILER!!!", 0, 0, 0)
	_, err := io.WriteString(w, b.String())
	return err
}
