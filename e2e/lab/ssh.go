package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHKey is a key pair made for one run: the public half goes into the
// profiles, the private half logs in. It stays in memory unless
// WritePrivate puts it in a file.
type SSHKey struct {
	Signer ssh.Signer
	// Authorized is the public key as an authorized_keys line.
	Authorized string

	private ed25519.PrivateKey
	comment string
}

// NewSSHKey generates an ed25519 key pair with the given comment.
func NewSSHKey(comment string) (*SSHKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("lab: ssh key: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("lab: ssh key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " " + comment
	return &SSHKey{Signer: s, Authorized: line, private: priv, comment: comment}, nil
}

// WritePrivate writes the private key to a new file, name, in OpenSSH's
// format with mode 0600: what `ssh -i name` reads.
func (k *SSHKey) WritePrivate(name string) error {
	if k.private == nil {
		return fmt.Errorf("lab: ssh key %q: no private key (make keys with NewSSHKey)", k.comment)
	}
	block, err := ssh.MarshalPrivateKey(k.private, k.comment)
	if err != nil {
		return fmt.Errorf("lab: ssh key: %w", err)
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("lab: ssh key: %w", err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		return fmt.Errorf("lab: ssh key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("lab: ssh key: %w", err)
	}
	return nil
}

// SSH logs in to addr ("IP:22") as user with key, from inside namespace ns,
// retrying until it succeeds or timeout passes: a machine's SSH server
// comes up some time after its console says it booted. The host key is
// not checked: it was generated on the machine's first boot, a moment ago.
func (n *Net) SSH(ctx context.Context, ns, addr, user string, key *SSHKey, timeout time.Duration) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	}
	dial := dialIn(ns)
	deadline := time.Now().Add(timeout)
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			conn, chans, reqs, herr := ssh.NewClientConn(c, addr, cfg)
			if herr == nil {
				return ssh.NewClient(conn, chans, reqs), nil
			}
			c.Close()
			err = herr
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lab: ssh %s@%s from %s: still failing after %v: %w", user, addr, ns, timeout, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// Run runs cmd in a new session of c and returns its combined output.
func Run(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("lab: ssh session: %w", err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		return string(out), fmt.Errorf("lab: ssh %q: %w", cmd, err)
	}
	return string(out), nil
}
