package tftp

import (
	"errors"
	"io/fs"
	"path"
	"strings"
)

// cleanPath maps a file name from a read request to a path relative to the
// root, or says why the name is refused. The rules are deliberately stricter
// than what os.Root alone enforces, so that a refused name is refused the same
// way on every platform and the log can say why:
//
//   - Only printable ASCII is accepted. RFC 1350 file names are netascii;
//     control bytes would be log injection and NUL cannot be part of a name
//     (on the wire it ends the field, so it can only appear here through a
//     caller other than the packet parser).
//   - A backslash is refused rather than translated: Windows-style clients
//     are not expected, and "..\x" must never become "../x" somewhere later.
//   - Any ".." element is refused, even one that would stay inside the root
//     ("a/../b"): firmware never sends one, so it is a probe, not a request.
//   - Leading slashes are dropped: the name is always relative to the root.
//     PXE ROMs, GRUB ("(tftp)/grub/grub.cfg") and pxelinux send "/file" and
//     mean the server's root, which is also what tftpd-hpa -s does.
//   - "." and empty elements are cleaned away ("./a//b" is "a/b"); a name
//     that cleans to the root itself is refused.
//
// Symbolic links are not looked at here; os.Root refuses those that leave
// the root when the file is opened.
func cleanPath(name string) (string, error) {
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == 0:
			return "", errors.New("name contains a NUL byte")
		case c == '\\':
			return "", errors.New("name contains a backslash")
		case c < 0x20 || c > 0x7e:
			return "", errors.New("name contains a control or non-ASCII byte")
		}
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", errors.New(`name contains a ".." element`)
		}
	}
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == "." {
		return "", errors.New("name is empty or the root directory")
	}
	// Unreachable after the checks above; kept so that a future change to
	// them cannot silently hand os.Root something that is not a local path.
	if !fs.ValidPath(rel) {
		return "", errors.New("name is not a valid relative path")
	}
	return rel, nil
}
