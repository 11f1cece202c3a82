package profiles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Limits on what a profiles directory may hold (docs/DESIGN.md §5). A fleet
// of 100,000 hosts is about 10 MB of YAML; past these, a file is a mistake
// (a log, an image, /dev/zero behind a link), and reading it would only
// exhaust memory.
const (
	MaxFileSize  = 16 << 20 // bytes in one profiles file
	MaxTotalSize = 64 << 20 // bytes in all of them
)

// errChanging is a file that changed while it was read: an editor or a
// copy is still writing it.
var errChanging = errors.New("profiles: files changed while they were read")

// Load reads every *.yaml and *.yml file of dir (not recursively) and returns
// the validated snapshot. On any problem it returns an ErrorList naming each
// problem's file and line, and no Set: a file that is not a regular file
// (a FIFO, a device, a directory, a link that leaves dir) or is larger than
// MaxFileSize is such a problem, as are files that together exceed
// MaxTotalSize. Only a failure to read the directory or a file is returned
// as another error, as is a file that changed while it was read (each file
// is read twice and must be identical). Load does not wait for the files
// to settle; Watcher does.
func Load(dir string) (*Set, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	defer root.Close()
	st, err := scan(root, dir)
	if err != nil {
		return nil, err
	}
	srcs, err := readAll(root, dir, st)
	if errors.Is(err, errChanging) {
		return nil, fmt.Errorf("%w; read them again when the writer is done", err)
	}
	if err != nil {
		return nil, err
	}
	return load(srcs)
}

// fileState is what says a file changed: its name, identity, size and
// times. Editors that save in place keep the inode and change the size or
// the times; editors that save by rename change the inode.
type fileState struct {
	name         string // in the directory
	mode         fs.FileMode
	size         int64
	mtime, ctime int64 // ns since the epoch; ctime 0 where unknown
	dev, ino     uint64
	refusal      string // why the file is not read; "" for one that is
}

// dirState is the state of every profiles file of a directory, by name.
type dirState []fileState

func (s dirState) equal(o dirState) bool { return slices.Equal(s, o) }

// settledSince reports whether no file changed after t (nor claims a time
// after now, which says nothing).
func (s dirState) settledSince(t, now time.Time) bool {
	for _, f := range s {
		if max(f.mtime, f.ctime) > t.UnixNano() || f.mtime > now.UnixNano() {
			return false
		}
	}
	return true
}

// scan lists the profiles files of dir and stats each through root, which
// follows a link only while it stays inside dir. Stat never blocks on a
// FIFO; nothing is opened here.
func scan(root *os.Root, dir string) (dirState, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	var st dirState
	for _, e := range entries {
		if !isProfile(e.Name()) || e.IsDir() {
			continue
		}
		fi, err := root.Stat(e.Name())
		switch {
		case errors.Is(err, fs.ErrNotExist) && e.Type()&fs.ModeSymlink == 0:
			continue // renamed away since ReadDir: an editor is saving
		case err != nil:
			// A dangling link, or one that leaves the directory (to
			// /dev/zero, /etc/shadow): refused, never followed.
			st = append(st, fileState{name: e.Name(), mode: e.Type(), refusal: "a link that leaves the profiles directory or points nowhere; only regular files inside it are read"})
			continue
		}
		f := stateOf(e.Name(), fi)
		switch {
		case !fi.Mode().IsRegular():
			f.refusal = fmt.Sprintf("not a regular file (%s); only regular files are read", kind(fi.Mode()))
		case fi.Size() > MaxFileSize:
			f.refusal = fmt.Sprintf("%d bytes, more than the %d MiB a profiles file may hold", fi.Size(), MaxFileSize>>20)
		}
		st = append(st, f)
	}
	return st, nil
}

// kind names a non-regular file's type.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// refusals is every refused file of st as an ErrorList, with the files
// that push the total past MaxTotalSize.
func refusals(dir string, st dirState) ErrorList {
	var errs ErrorList
	var total int64
	for _, f := range st {
		name := filepath.Join(dir, f.name)
		if f.refusal != "" {
			errs = append(errs, Error{File: name, Msg: f.refusal})
			continue
		}
		total += f.size
		if total > MaxTotalSize {
			errs = append(errs, Error{File: name, Msg: fmt.Sprintf("the profiles files up to this one hold %d bytes, more than the %d MiB all of them may hold", total, MaxTotalSize>>20)})
		}
	}
	return errs
}

// readAll reads every file of st twice and returns their contents when both
// reads agree with each other and with st; errChanging otherwise. A file
// that st refuses is never opened.
func readAll(root *os.Root, dir string, st dirState) ([]source, error) {
	if errs := refusals(dir, st); len(errs) > 0 {
		return nil, errs
	}
	srcs := make([]source, 0, len(st))
	for _, f := range st {
		name := filepath.Join(dir, f.name)
		first, err := readOne(root, f)
		if err != nil {
			return nil, fmt.Errorf("profiles: %s: %w", name, err)
		}
		second, err := readOne(root, f)
		if err != nil {
			return nil, fmt.Errorf("profiles: %s: %w", name, err)
		}
		if !bytes.Equal(first, second) {
			return nil, fmt.Errorf("%w: %s", errChanging, name)
		}
		srcs = append(srcs, source{name: name, data: first})
	}
	return srcs, nil // in name order: scan's os.ReadDir sorts
}

// readOne opens f without following a link out of the directory and
// without blocking (a FIFO swapped in since the scan opens at once), checks
// that the opened file is the regular file the scan saw, and reads at most
// MaxFileSize bytes of it.
func readOne(root *os.Root, f fileState) ([]byte, error) {
	fd, err := root.OpenFile(f.name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errChanging
	}
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || stateOf(f.name, fi) != f {
		return nil, errChanging
	}
	b, err := io.ReadAll(io.LimitReader(fd, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != f.size {
		return nil, errChanging // grew or shrank while read
	}
	return b, nil
}

// readSettled waits until the files of dir have not changed for settle,
// then reads them (twice each, identical); it starts over while they
// change, until ctx ends. Files none of whose times is within settle of
// now are settled already and are read at once.
func readSettled(ctx context.Context, dir string, settle time.Duration) ([]source, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	defer root.Close()
	var changing error
	for {
		st, err := scan(root, dir)
		if err != nil {
			return nil, err
		}
		if now := time.Now(); !st.settledSince(now.Add(-settle), now) {
			if err := sleep(ctx, settle); err != nil {
				return nil, stillChanging(err, changing)
			}
			again, err := scan(root, dir)
			if err != nil {
				return nil, err
			}
			if !again.equal(st) {
				changing = fmt.Errorf("%w: changed within %v", errChanging, settle)
				continue
			}
		}
		srcs, err := readAll(root, dir, st)
		if !errors.Is(err, errChanging) {
			return srcs, err
		}
		changing = err
		if err := sleep(ctx, settle/4+time.Millisecond); err != nil {
			return nil, stillChanging(err, changing)
		}
	}
}

func stillChanging(ctxErr, changing error) error {
	if changing != nil {
		return fmt.Errorf("%w (gave up: %w)", changing, ctxErr)
	}
	return ctxErr
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
