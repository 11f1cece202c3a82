package lab

import "syscall"

// deathSignal makes the kernel kill a child when the lab's process dies, so
// a test killed by its timeout leaves no QEMU running (PR_SET_PDEATHSIG).
func deathSignal() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
