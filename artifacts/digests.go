package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// Digests computes the SHA-256 of files of an artifacts directory, for
// the catalog check that keeps a version whose image is not what the
// catalog says away from the machines (docs/DESIGN.md, "Checks before
// damage"). Each digest is remembered for as long as the file keeps its
// size, modification time and inode, so checking the catalog again after
// a profiles reload reads only what changed. Digests is safe for
// concurrent use; the zero value with Dir set is ready.
type Digests struct {
	// Dir is the artifacts directory; names resolve inside it as the
	// Handler resolves them.
	Dir string
	// Hashed, if set, is called with the bytes of each file read (not
	// for a remembered digest); tests use it.
	Hashed func(name string, bytes int64)

	sums stampCache[string]
}

// Sum returns the hex SHA-256 of the regular file name (relative to Dir).
func (d *Digests) Sum(name string) (string, error) {
	f, stamp, err := openRegular(d.Dir, name, "file")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return d.sums.get(name, stamp, func() (string, error) {
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return "", fmt.Errorf("artifacts: %s: %w", name, err)
		}
		if d.Hashed != nil {
			d.Hashed(name, n)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	})
}

// Stat returns the size of the regular file name (relative to Dir), or
// why it cannot be served.
func (d *Digests) Stat(name string) (int64, error) {
	f, stamp, err := openRegular(d.Dir, name, "file")
	if err != nil {
		return 0, err
	}
	f.Close()
	return stamp.size, nil
}
