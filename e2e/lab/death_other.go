//go:build !linux

package lab

import "syscall"

// deathSignal has no equivalent outside Linux; the lab needs Linux anyway.
func deathSignal() *syscall.SysProcAttr { return nil }
