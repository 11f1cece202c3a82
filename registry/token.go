package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// tokenBytes is the entropy of an install token: 256 bits, so guessing one
// within its lifetime is out of the question.
const tokenBytes = 32

// newToken returns a fresh install token and its digest. The token is hex,
// so it is one literal word in an iPXE script and on a kernel command line.
func newToken(rand io.Reader) (token, digest string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", "", fmt.Errorf("registry: mint install token: %w", err)
	}
	token = hex.EncodeToString(b)
	return token, tokenDigest(token), nil
}

// tokenDigest is what the registry stores of a token: only a digest, so the
// database (or a backup of it) holds no usable token. A plain SHA-256 is
// enough for 256 random bits; a slow hash protects guessable passwords.
func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
