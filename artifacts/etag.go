package artifacts

import (
	"fmt"
	"io/fs"
)

// etag is a strong entity tag for the file: its size, modification time in
// nanoseconds and inode number. Replacing a file (a new kernel renamed over
// the old one) changes the inode even when size and time happen to match,
// so a client never resumes one file's download with another's bytes.
func etag(fi fs.FileInfo) string {
	return fmt.Sprintf(`"%x-%x-%x"`, fi.Size(), fi.ModTime().UnixNano(), inode(fi))
}
