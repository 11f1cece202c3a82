package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AdminTokenFile is the admin token's file name in the data directory.
const AdminTokenFile = "admin.token"

// AdminToken returns the admin token kept in dir/admin.token, creating it
// on first start: 32 random bytes in hex, mode 0600, so only the user
// rackboot runs as (root) can read it. A token file that others can read
// is refused rather than used: the token would no longer be a secret.
func AdminToken(dir string) (string, error) {
	path := filepath.Join(dir, AdminTokenFile)
	tok, err := readAdminToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("api: admin token: %w", err)
	}
	tok = hex.EncodeToString(b)
	// O_EXCL: two daemons starting at once must not write two tokens;
	// the loser reads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readAdminToken(path)
	}
	if err != nil {
		return "", fmt.Errorf("api: admin token: %w", err)
	}
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("api: admin token: %w", err)
	}
	return tok, nil
}

// ReadAdminToken reads the admin token of the data directory dir, for the
// command-line tools.
func ReadAdminToken(dir string) (string, error) {
	return readAdminToken(filepath.Join(dir, AdminTokenFile))
}

func readAdminToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err // fs.ErrNotExist stays visible to AdminToken
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("api: admin token: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("api: admin token %s: readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return "", fmt.Errorf("api: admin token %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("api: admin token %s: want one word of at least 32 characters", path)
	}
	return tok, nil
}

// AdoptAdminToken makes tok the admin token of dir/admin.token, replacing
// another one: appliances sharing a store share one admin token, so the
// CLI works against any of them (docs/DESIGN.md, "Several appliances").
// The file is replaced atomically, mode 0600.
func AdoptAdminToken(dir, tok string) error {
	path := filepath.Join(dir, AdminTokenFile)
	if old, err := readAdminToken(path); err == nil && old == tok {
		return nil
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("api: admin token: %w", err)
	}
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("api: admin token: %w", err)
	}
	return nil
}
