//go:build !linux

// Command rackboot-agent is /init of rackboot's Linux installer initramfs;
// see main.go.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "rackboot-agent runs only on Linux, as PID 1 of the installer initramfs")
	os.Exit(2)
}
