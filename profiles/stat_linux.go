package profiles

import (
	"io/fs"
	"syscall"
)

// stateOf is a file's state from its FileInfo, with the inode and the
// change time, which no write can leave behind (touch -d sets mtime back,
// never ctime).
func stateOf(name string, fi fs.FileInfo) fileState {
	f := fileState{name: name, mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.dev, f.ino = uint64(st.Dev), st.Ino
		f.ctime = st.Ctim.Nano()
	}
	return f
}
