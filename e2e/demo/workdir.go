package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// workDir is the one directory that holds everything the demo builds and
// runs:
//
//	bin/            rackboot and rackboot-agent of this checkout
//	artifacts/      what rackboot serves: kernel, agent initramfs, the Debian image
//	                (a link to lab's cache, or a copy)
//	id_ed25519      the run's SSH private key (OpenSSH format, mode 0600)
//	profiles/       the Debian fleet, with the image's sha256 and the key's public half
//	data/           rackboot's state: registry, admin token, staged iPXE
//	rackboot.log    rackboot's JSON log
//	udhcpd.*        the site DHCP server's configuration, leases and log
//	NODE.disk.img   each machine's disk (sparse)
//	NODE-install.*, NODE-boot.*   each power-on's serial console, QEMU log, UEFI variables
type workDir struct {
	dir string
}

func newWorkDir() (*workDir, error) {
	dir, err := os.MkdirTemp("", "rackboot-demo-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	return &workDir{dir: dir}, nil
}

func (w *workDir) path(elem ...string) string {
	return filepath.Join(append([]string{w.dir}, elem...)...)
}

func (w *workDir) profiles() string  { return w.path("profiles") }
func (w *workDir) data() string      { return w.path("data") }
func (w *workDir) serverLog() string { return w.path("rackboot.log") }
func (w *workDir) key() string       { return w.path("id_ed25519") }

// remove deletes the work directory and everything in it.
func (w *workDir) remove() error {
	if err := os.RemoveAll(w.dir); err != nil {
		return fmt.Errorf("removing the work directory: %w", err)
	}
	return nil
}
