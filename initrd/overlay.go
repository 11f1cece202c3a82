package initrd

import (
	"compress/gzip"
	"io"
	"maps"
	"slices"

	"github.com/cavaliergopher/cpio"
)

// Overlay writes a gzip-compressed newc archive of files (archive path,
// without a leading slash, to contents; mode 0644) and their parent
// directories. Loaded as an extra initrd after the installer's own, the
// kernel unpacks it over that one (it unpacks concatenated archives in
// order), which is how the appliance hands the agent its CA without
// rebuilding the installer initramfs (docs/DESIGN.md, section 7, "TLS").
//
// Compressed because of where it lands: the kernel reads an uncompressed
// archive only at a 4-byte boundary of the concatenation (init/initramfs.c,
// unpack_to_rootfs), and while iPXE pads each initrd to one under BIOS, the
// EFI stub of Debian 12's kernel concatenates them as they are, so after a
// compressed initramfs of odd length an uncompressed overlay fails with
// "invalid magic at start of compressed archive" (seen in the e2e lab). A
// compressed one is recognised by its magic at any offset.
func Overlay(w io.Writer, files map[string][]byte) error {
	zw := gzip.NewWriter(w)
	var rep Report
	a := &archive{w: cpio.NewWriter(zw), rep: &rep, dirs: map[string]bool{}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := a.bytes(name, files[name], 0o644); err != nil {
			return err
		}
	}
	if err := a.w.Close(); err != nil {
		return err
	}
	return zw.Close()
}
