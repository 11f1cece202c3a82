package artifacts

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// fileStamp identifies a version of a file.
type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// openRegular opens the regular file name under dir as the Handler
// resolves names (through an os.Root: no way out), with its stamp. The
// caller closes the file.
func openRegular(dir, name, what string) (*os.File, fileStamp, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("artifacts: %w", err)
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("artifacts: %s %s: %w", what, name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileStamp{}, fmt.Errorf("artifacts: %s %s: %w", what, name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fileStamp{}, fmt.Errorf("artifacts: %s %s: not a regular file", what, name)
	}
	return f, fileStamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}, nil
}

// stampCache remembers what was computed from a file for as long as the
// file keeps its stamp. Concurrent requests for a value being computed
// wait for that one computation; a failure is not remembered. The zero
// value is ready; it is safe for concurrent use.
type stampCache[T any] struct {
	mu    sync.Mutex
	known map[string]*stamped[T]
}

// stamped is one value, computed or in progress.
type stamped[T any] struct {
	stamp fileStamp
	done  chan struct{} // closed when val and err are set
	val   T
	err   error
}

// get returns the value of key for the file version stamp, computing it
// with compute unless known.
func (c *stampCache[T]) get(key string, stamp fileStamp, compute func() (T, error)) (T, error) {
	c.mu.Lock()
	m := c.known[key]
	if m == nil || m.stamp != stamp {
		m = &stamped[T]{stamp: stamp, done: make(chan struct{})}
		if c.known == nil {
			c.known = make(map[string]*stamped[T])
		}
		c.known[key] = m
		c.mu.Unlock()
		m.val, m.err = compute()
		close(m.done)
	} else {
		c.mu.Unlock()
		<-m.done
	}
	if m.err != nil {
		c.mu.Lock()
		if c.known[key] == m {
			delete(c.known, key) // compute again next time
		}
		c.mu.Unlock()
		var zero T
		return zero, m.err
	}
	return m.val, nil
}
