package imaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Opener opens the image file as published (compressed) at a byte offset.
// The reader must yield the file's bytes from exactly that offset on. Stream
// calls it again with the offset reached when a read fails, so a download
// cut mid-stream resumes where it stopped (an HTTP Range request) and feeds
// the same decompressor and hash as if nothing had happened.
//
// A reader that knows the file's total size may say so with a method
// Size() int64; a resumed transfer that reports a different size fails.
// Errors wrapped with Permanent are not retried.
type Opener func(ctx context.Context, offset int64) (io.ReadCloser, error)

// Permanent marks an Opener error that retrying cannot fix (404, a server
// ignoring Range, a file that changed), so Stream fails at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked with Permanent: retrying
// the same request cannot fix it, nor can sending it to another server
// of the same content.
func IsPermanent(err error) bool { return isPermanent(err) }

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// maxRetryDelay caps the doubling delay between reconnection attempts.
const maxRetryDelay = 30 * time.Second

// resumer is the compressed byte stream: an io.Reader over Opener that
// reconnects transparently after a failed read, from the offset reached.
type resumer struct {
	ctx     context.Context
	open    Opener
	retries int           // consecutive failures tolerated
	delay   time.Duration // first retry delay, doubled each time
	log     *slog.Logger

	rc       io.ReadCloser
	off      int64 // bytes delivered so far
	size     int64 // total, 0 while unknown
	opened   bool
	failures int // consecutive, reset by progress
	resumes  int
	err      error // sticky: once given up, every Read fails alike
}

func (r *resumer) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func (r *resumer) read(p []byte) (int, error) {
	for {
		if r.rc == nil {
			if err := r.connect(); err != nil {
				return 0, err
			}
		}
		n, err := r.rc.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == nil {
			return n, nil
		}
		if err == io.EOF {
			if r.size == 0 || r.off >= r.size {
				return n, io.EOF
			}
			// A clean close short of the announced length is a cut too.
			err = io.ErrUnexpectedEOF
		}
		r.rc.Close()
		r.rc = nil
		if cerr := r.ctx.Err(); cerr != nil {
			return n, cerr
		}
		if isPermanent(err) {
			return n, err
		}
		if ferr := r.fail(err); ferr != nil {
			return n, ferr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// connect opens the source at the current offset, retrying on failure.
func (r *resumer) connect() error {
	for {
		rc, err := r.open(r.ctx, r.off)
		if err == nil {
			if s, ok := rc.(interface{ Size() int64 }); ok {
				if n := s.Size(); n > 0 {
					if r.size > 0 && n != r.size {
						rc.Close()
						return fmt.Errorf("imaging: image changed during download: %d bytes, then %d", r.size, n)
					}
					r.size = n
				}
			}
			if r.opened {
				r.resumes++
				r.log.Info("download resumed", "offset", r.off, "attempt", r.failures)
			}
			r.opened = true
			r.rc = rc
			return nil
		}
		if cerr := r.ctx.Err(); cerr != nil {
			return cerr
		}
		if isPermanent(err) {
			return err
		}
		if ferr := r.fail(err); ferr != nil {
			return ferr
		}
	}
}

// fail counts a failure and waits before the next attempt, or gives up.
func (r *resumer) fail(err error) error {
	r.failures++
	if r.failures > r.retries {
		return fmt.Errorf("imaging: download failed %d times in a row at byte %d: %w", r.failures, r.off, err)
	}
	d := r.delay << (r.failures - 1)
	if d > maxRetryDelay || d <= 0 {
		d = maxRetryDelay
	}
	r.log.Warn("download interrupted", "offset", r.off, "attempt", r.failures, "retry_in", d, "err", err)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

func (r *resumer) Close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}
