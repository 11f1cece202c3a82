package imaging

import (
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens the O_DIRECT descriptor of f's path; failure is not an
// error, just no direct I/O.
func openDirect(f *os.File, path string) *diskFile {
	d := &diskFile{File: f}
	if df, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0); err == nil {
		d.direct = df
	}
	return d
}
