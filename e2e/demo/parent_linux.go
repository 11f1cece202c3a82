package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// dieWithParent asks the kernel for SIGTERM when the parent process dies.
// Under `go run` the parent is the go command, which a SIGTERM (from
// timeout(1), systemd, kill) ends without passing it on; the demo would
// then run on, orphaned, with its VMs. With this it cleans up instead.
func dieWithParent() error {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", err)
	}
	return nil
}
