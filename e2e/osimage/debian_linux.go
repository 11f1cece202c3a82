package osimage

import (
	"os/exec"
	"syscall"
)

// isolateMounts runs cmd in a new mount namespace, with every mount
// private to it (Go remounts / private when it unshares one), and sends
// it SIGTERM if the process that started it dies.
func isolateMounts(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGTERM}
}
