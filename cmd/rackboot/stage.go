package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// stageBootFiles copies the network boot programs of ipxeDir into dst and
// returns dst, which TFTP and /nbp/ then serve.
//
// Why a copy: the file servers refuse any name that leaves their root,
// symbolic links included, because names come from the network. But the
// distribution's ipxe package itself installs ipxe.efi as a link to
// /boot/ipxe.efi. The admin's directory is trusted, the network is not: the
// links are followed here, once, at start, and the servers stay strict.
func stageBootFiles(ipxeDir, dst string, log *slog.Logger) error {
	entries, err := os.ReadDir(ipxeDir)
	if err != nil {
		return fmt.Errorf("ipxe-dir: %w", err)
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	var n int
	for _, e := range entries {
		src := filepath.Join(ipxeDir, e.Name())
		fi, err := os.Stat(src) // follows the package's links
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := copyFile(src, filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("ipxe-dir: %w", err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("ipxe-dir %s holds no files (install the ipxe package or set --ipxe-dir)", ipxeDir)
	}
	log.Info("boot programs staged", "path", ipxeDir, "files", n)
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
