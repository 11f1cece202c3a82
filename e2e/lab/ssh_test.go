package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSSHKeyWritePrivate writes a run's key and reads it back as ssh -i
// would: the same key pair, a file only its owner reads, never replaced.
func TestSSHKeyWritePrivate(t *testing.T) {
	k, err := NewSSHKey("demo@lab")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Authorized, "ssh-ed25519 ") || !strings.HasSuffix(k.Authorized, " demo@lab") {
		t.Errorf("Authorized = %q, want an ssh-ed25519 line ending with the comment", k.Authorized)
	}
	name := filepath.Join(t.TempDir(), "id_ed25519")
	if err := k.WritePrivate(name); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.PublicKey().Marshal(), k.Signer.PublicKey().Marshal()) {
		t.Error("the file holds another key than the signer's")
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := k.WritePrivate(name); err == nil {
		t.Error("WritePrivate replaced an existing file")
	}
	if err := (&SSHKey{Signer: k.Signer}).WritePrivate(filepath.Join(t.TempDir(), "k")); err == nil {
		t.Error("WritePrivate of a key without its private half succeeded")
	}
}
