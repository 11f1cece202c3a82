package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := AdminToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 64 {
		t.Errorf("token %q: want 64 hex digits", tok)
	}
	fi, err := os.Stat(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	again, err := AdminToken(dir)
	if err != nil || again != tok {
		t.Errorf("second start = %q, %v; want the same token", again, err)
	}
	if read, err := ReadAdminToken(dir); err != nil || read != tok {
		t.Errorf("ReadAdminToken = %q, %v", read, err)
	}
}

func TestAdminTokenRefused(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"readable by others", strings.Repeat("a", 64) + "\n", 0o644, "readable by others"},
		{"empty", "", 0o600, "at least 32"},
		{"short", "abc\n", 0o600, "at least 32"},
		{"two words", strings.Repeat("a", 40) + " " + strings.Repeat("b", 40), 0o600, "one word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, AdminTokenFile)
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			if tok, err := AdminToken(dir); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("AdminToken = %q, %v; want an error saying %q", tok, err, tt.want)
			}
		})
	}
	if _, err := AdminToken(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("AdminToken in a missing directory succeeded")
	}
}
