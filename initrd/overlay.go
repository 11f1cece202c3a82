package initrd

import (
	"io"
	"maps"
	"slices"

	"github.com/cavaliergopher/cpio"
)

// Overlay writes an uncompressed newc archive of files (archive path,
// without a leading slash, to contents; mode 0644) and their parent
// directories. Loaded as an extra initrd after the installer's own, the
// kernel unpacks it over that one (it unpacks concatenated archives in
// order), which is how the appliance hands the agent its CA without
// rebuilding the installer initramfs (docs/DESIGN.md, section 7).
func Overlay(w io.Writer, files map[string][]byte) error {
	var rep Report
	a := &archive{w: cpio.NewWriter(w), rep: &rep, dirs: map[string]bool{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := a.bytes(name, files[name], 0o644); err != nil {
			return err
		}
	}
	return a.w.Close()
}
