//go:build !linux

package osimage

import "os/exec"

// isolateMounts does nothing: mmdebstrap runs on Linux only.
func isolateMounts(*exec.Cmd) {}
