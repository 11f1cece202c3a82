//go:build !linux

package lab

import "errors"

// DiskWritten needs SEEK_DATA: the lab runs on Linux only.
func DiskWritten(string) (bool, error) { return false, errors.New("lab: DiskWritten needs Linux") }
