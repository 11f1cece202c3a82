package tftp

import (
	"io/fs"
	"syscall"
)

// changeTime is the file's status change time (st_ctime) in nanoseconds.
// Every write, truncation, chmod or rename of the file moves it, and no
// system call sets it back.
func changeTime(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim.Nano()
	}
	return 0
}
