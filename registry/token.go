package registry

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// keyBytes is the size of the key install tokens are derived from: 256
// bits, so guessing a token within its lifetime is out of the question.
const keyBytes = 32

// newKey returns a fresh token key.
func newKey(rand io.Reader) ([]byte, error) {
	k := make([]byte, keyBytes)
	if _, err := io.ReadFull(rand, k); err != nil {
		return nil, fmt.Errorf("registry: make the install token key: %w", err)
	}
	return k, nil
}

// deriveToken is the install token of attempt of mac that expires then:
// an HMAC under the registry's key, so the token of a pending attempt can
// be handed out again without storing it, and a token cannot be computed
// without the key. It is hex, one literal word in an iPXE script and on a
// kernel command line.
func deriveToken(key []byte, mac string, attempt int, expires time.Time) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("rackboot install token\x00"))
	m.Write([]byte(mac))
	var b [17]byte
	binary.BigEndian.PutUint64(b[1:], uint64(attempt))
	m.Write(b[:9])
	binary.BigEndian.PutUint64(b[1:], uint64(expires.UnixNano()))
	m.Write(b[:9])
	return hex.EncodeToString(m.Sum(nil))
}

// tokenMinter derives the install tokens of one machine and remembers the
// last one: a script request checks the record's token against the key
// (digest) and then hands the same token out (token), one derivation for
// both.
type tokenMinter struct {
	key []byte
	mac string

	attempt int
	expires time.Time
	tok     string // "" until the first derivation
	dig     string
}

func (t *tokenMinter) derive(attempt int, expires time.Time) {
	if t.tok == "" || t.attempt != attempt || !t.expires.Equal(expires) {
		t.attempt, t.expires = attempt, expires
		t.tok = deriveToken(t.key, t.mac, attempt, expires)
		t.dig = tokenDigest(t.tok)
	}
}

// token is the install token of the attempt that expires then.
func (t *tokenMinter) token(attempt int, expires time.Time) string {
	t.derive(attempt, expires)
	return t.tok
}

// digest is what the registry stores of that token.
func (t *tokenMinter) digest(attempt int, expires time.Time) string {
	t.derive(attempt, expires)
	return t.dig
}

// tokenDigest is what the registry stores of a token: only a digest, so the
// database (or a backup of it) holds no usable token, and checking a token
// needs no key. A plain SHA-256 is enough for 256 bits a key derived; a
// slow hash protects guessable passwords.
func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewTokenKey returns a fresh install-token key, for appliances that share
// one (Registry.Key).
func NewTokenKey() ([]byte, error) { return newKey(rand.Reader) }
