//go:build !linux

package profiles

import "io/fs"

// stateOf is a file's state from its FileInfo: size and time only where
// rackboot does not run (the admin's workstation validating a fleet).
func stateOf(name string, fi fs.FileInfo) fileState {
	return fileState{name: name, mode: fi.Mode(), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}
