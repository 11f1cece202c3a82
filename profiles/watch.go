package profiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher holds the current Set of a profiles directory and replaces it
// when the directory changes. Readers call Current once per request and
// use that snapshot throughout, so a request sees the old fleet or the new
// one, never a mix. An invalid edit never replaces a valid snapshot: the
// old one keeps serving and LastError says why the new one was refused.
//
// The zero value is not ready: set Dir, call Reload once (it fails if the
// directory is invalid), then Run to follow changes.
type Watcher struct {
	// Dir is the profiles directory.
	Dir string
	// Debounce is how long the directory must stay quiet after a change
	// event before a reload starts: an editor's save or a `git pull` is a
	// burst of events. Zero means 200ms.
	Debounce time.Duration
	// Settle is how long every file must stay unchanged (size, times,
	// inode) before it is read, and each is then read twice and must be
	// identical: an editor that writes in place, or a copy, is otherwise
	// caught half way, and a half-written file can be valid YAML that
	// drops hosts or partitions. Files last changed longer ago than Settle
	// are read at once. Zero means 1s; negative reads at once (tests).
	Settle time.Duration
	// Timeout bounds one reload: waiting for the files to settle and
	// reading them. A reload that runs out fails, LastError says why, and
	// the previous snapshot keeps serving; a read stuck in the kernel (a
	// hung network file system) keeps later reloads failing the same way
	// until it returns, and never holds up Current or shutdown. Zero means
	// 30s.
	Timeout time.Duration
	// Log receives a line per reload; nil discards.
	Log *slog.Logger
	// OnReload, if set, is called after a new snapshot was swapped in (or
	// when the files went back to the served snapshot after an error), and
	// OnError after a load failed (err is usually an ErrorList). They are
	// called one at a time, from the goroutine that reloads.
	OnReload func(*Set)
	OnError  func(error)

	cur     atomic.Pointer[Set]
	once    sync.Once
	turn    chan struct{} // held by the reload running, or its stuck read
	lastErr atomic.Pointer[error]
}

// Current returns the snapshot being served, nil before the first
// successful Reload.
func (w *Watcher) Current() *Set { return w.cur.Load() }

// Lookup looks mac up in the current snapshot. A caller that needs several
// answers from one snapshot calls Current instead.
func (w *Watcher) Lookup(mac net.HardwareAddr) (*Host, bool) { return w.Current().Lookup(mac) }

// DefaultInstaller is the current snapshot's default installer.
func (w *Watcher) DefaultInstaller() *Installer { return w.Current().DefaultInstaller() }

// LastError returns why the directory's current contents are not being
// served, or nil when they are. It is an ErrorList for invalid files.
func (w *Watcher) LastError() error {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (w *Watcher) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}

// Reload loads the directory now and swaps the snapshot if it is valid;
// otherwise the current snapshot stays and the error is returned and kept
// for LastError. It is ReloadContext without a context of its own.
func (w *Watcher) Reload() error { return w.ReloadContext(context.Background()) }

// ReloadContext waits until the files have settled, reads them and swaps
// the snapshot if they are valid; otherwise the current snapshot stays and
// the error is returned and kept for LastError. It returns when ctx ends or
// Timeout passes, whatever the file system does; a reload cut short by ctx
// (shutdown) is no failure and changes nothing. SIGHUP calls it; so does
// Run after a change.
func (w *Watcher) ReloadContext(ctx context.Context) error {
	w.once.Do(func() { w.turn = make(chan struct{}, 1) })
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	stop := ctx // the caller's: when it ends (shutdown), nothing failed
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	failed := func(err error) error {
		if stop.Err() != nil {
			return err
		}
		return w.failed(err)
	}
	select {
	case w.turn <- struct{}{}:
	case <-ctx.Done():
		return failed(fmt.Errorf("profiles: %s: the previous reload is still reading (%w)", w.Dir, ctx.Err()))
	}
	type result struct {
		srcs []source
		err  error
	}
	read := make(chan result, 1)
	go func() {
		srcs, err := readSettled(ctx, w.Dir, w.settle())
		read <- result{srcs, err}
	}()
	var r result
	select {
	case r = <-read:
	case <-ctx.Done():
		// The read gives up on ctx too, with the better reason (files
		// that never settled), unless it is stuck in the kernel: then it
		// keeps the turn until it returns and this reload gives up now.
		grace := time.NewTimer(100 * time.Millisecond)
		defer grace.Stop()
		select {
		case r = <-read:
		case <-grace.C:
			go func() { <-read; <-w.turn }()
			return failed(fmt.Errorf("profiles: %s: reading the files did not finish: %w", w.Dir, ctx.Err()))
		}
	}
	defer func() { <-w.turn }()
	if r.err != nil {
		return failed(r.err)
	}
	if cur := w.cur.Load(); cur != nil && cur.Digest() == digest(r.srcs) {
		// Touched, or reverted to what is being served: nothing to
		// swap, but a reverted bad edit is no longer an error.
		if w.lastErr.Swap(nil) != nil && w.OnReload != nil {
			w.OnReload(cur)
		}
		return nil
	}
	set, err := load(r.srcs)
	if err != nil {
		return w.failed(err)
	}
	w.cur.Store(set)
	w.lastErr.Store(nil)
	w.log().Info("profiles loaded", "path", w.Dir, "hosts", set.Len(), "files", len(set.Files()), "digest", set.Digest()[:12])
	if w.OnReload != nil {
		w.OnReload(set)
	}
	return nil
}

func (w *Watcher) settle() time.Duration {
	switch {
	case w.Settle < 0:
		return 0
	case w.Settle == 0:
		return time.Second
	}
	return w.Settle
}

// failed keeps err for LastError, logs it and reports it to OnError.
func (w *Watcher) failed(err error) error {
	w.lastErr.Store(&err)
	var list ErrorList
	if errors.As(err, &list) {
		w.log().Error("profiles invalid; still serving the previous snapshot", "path", w.Dir, "errors", len(list), "err", err.Error())
	} else {
		w.log().Error("profiles unreadable; still serving the previous snapshot", "path", w.Dir, "err", err)
	}
	if w.OnError != nil {
		w.OnError(err)
	}
	return err
}

// Run follows the directory until ctx ends, reloading after each burst of
// changes. It watches the directory, not the files: editors save by writing
// a new file and renaming it over the old one, which a watch on the old
// file would never see. It returns an error only when the directory cannot
// be watched.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("profiles: watch %s: %w", w.Dir, err)
	}
	defer fw.Close()
	if err := fw.Add(w.Dir); err != nil {
		return fmt.Errorf("profiles: watch %s: %w", w.Dir, err)
	}
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = 200 * time.Millisecond
	}
	// A first load once the watch is in place catches what changed between
	// the caller's Reload and now; unchanged files cost a digest.
	timer := time.NewTimer(debounce)
	fire := timer.C
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			// A bare chmod changes nothing rackboot reads.
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(debounce)
			fire = timer.C
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// An overflowed event queue lost changes: load anyway.
			w.log().Warn("profiles watch", "path", w.Dir, "err", err)
			timer.Reset(debounce)
			fire = timer.C
		case <-fire:
			fire = nil
			w.ReloadContext(ctx) // logged and kept for LastError
		}
	}
}
