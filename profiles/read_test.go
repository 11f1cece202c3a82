package profiles

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test if f does not return within d: the defects these
// tests reproduce blocked forever.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// refusedFiles is the base names of the files an ErrorList names.
func refusedFiles(t *testing.T, err error) map[string]string {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not an ErrorList: %v", err, err)
	}
	got := map[string]string{}
	for _, e := range list {
		got[filepath.Base(e.File)] = e.Msg
	}
	return got
}

// TestLoadRefusesSpecialFiles: only regular files inside the directory
// are read; a FIFO (which blocked the reload forever), a link to /dev/zero
// (read without limit), a link out of the directory and a file over the
// cap are refused by name, without being opened or read.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g1", 2, false)})
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside.yaml")
	if err := os.WriteFile(outside, []byte("hosts: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"zero.yaml": "/dev/zero", "out.yaml": outside, "up.yml": "../x.yaml", "dangling.yaml": "nothing"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	big, err := os.Create(filepath.Join(dir, "big.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(MaxFileSize + 1); err != nil { // sparse: nothing written
		t.Fatal(err)
	}
	big.Close()

	within(t, 5*time.Second, "Load", func() { _, err = Load(dir) })
	got := refusedFiles(t, err)
	for name, want := range map[string]string{
		"fifo.yaml":     "not a regular file (a named pipe)",
		"zero.yaml":     "a link that leaves the profiles directory",
		"out.yaml":      "a link that leaves the profiles directory",
		"up.yml":        "a link that leaves the profiles directory",
		"dangling.yaml": "points nowhere",
		"big.yaml":      "16777217 bytes, more than the 16 MiB",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s: %q, want it to say %q", name, got[name], want)
		}
	}
	if len(got) != 6 {
		t.Errorf("refused %v", got)
	}
}

// TestLoadLinksInside: a link that stays inside the directory is read (a
// Kubernetes ConfigMap volume is links into a hidden subdirectory); a
// directory named *.yaml is skipped as before.
func TestLoadLinksInside(t *testing.T) {
	dir := writeFiles(t, map[string]string{})
	if err := os.MkdirAll(filepath.Join(dir, "..data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "..data", "fleet.yaml"), []byte(genFleet("g1", 3, false)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/fleet.yaml", filepath.Join(dir, "fleet.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "old.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir)
	if err != nil || set.Len() != 3 {
		t.Fatalf("Load = %d hosts, %v", set.Len(), err)
	}
}

// TestLoadTotalCap: files under the per-file cap that together exceed
// MaxTotalSize are refused, naming the file that crosses the line.
func TestLoadTotalCap(t *testing.T) {
	dir := writeFiles(t, map[string]string{})
	for _, name := range []string{"a.yaml", "b.yaml", "c.yaml", "d.yaml", "e.yaml"} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(MaxFileSize); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	_, err := Load(dir)
	got := refusedFiles(t, err)
	if len(got) != 1 || !strings.Contains(got["e.yaml"], "more than the 64 MiB all of them may hold") {
		t.Errorf("refused %v", got)
	}
}

// TestWatcherSurvivesFIFO: with a FIFO and a /dev/zero link in the
// directory, a reload fails promptly naming them, LastError says so (the
// status endpoint reports unhealthy), a later good edit is applied, and Run
// stops at once.
func TestWatcherSurvivesFIFO(t *testing.T) {
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g1", 2, false)})
	w, reloads, errs := startWatcher(t, dir)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	got := refusedFiles(t, waitError(t, errs))
	if got["fifo.yaml"] == "" || got["zero.yaml"] == "" {
		t.Errorf("refused %v", got)
	}
	if w.LastError() == nil {
		t.Error("LastError is nil with a FIFO in the directory")
	}
	// SIGHUP's path returns too.
	within(t, 5*time.Second, "Reload", func() {
		if err := w.Reload(); err == nil {
			t.Error("Reload succeeded with a FIFO in the directory")
		}
	})
	if g := genOf(w.Current().Hosts()[0]); g != "g1" {
		t.Errorf("serving %s", g)
	}
	for _, n := range []string{"fifo.yaml", "zero.yaml"} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	writeAtomic(t, dir, "fleet.yaml", genFleet("g2", 2, false))
	waitReload(t, reloads, "g2")
	if err := w.LastError(); err != nil {
		t.Errorf("LastError after the good edit: %v", err)
	}
}

// TestWatcherTimeout: a reload that cannot finish (here: files that must
// settle for longer than the reload may take) fails within Timeout with an
// error LastError keeps, and the old snapshot keeps serving; a cancelled
// context (SIGTERM) ends a reload at once.
func TestWatcherTimeout(t *testing.T) {
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g1", 2, false)})
	w := &Watcher{Dir: dir, Settle: -1, Timeout: 300 * time.Millisecond}
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	w.Settle = time.Hour
	writeAtomic(t, dir, "fleet.yaml", genFleet("g2", 2, false))
	start := time.Now()
	err := w.Reload()
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
		t.Fatalf("Reload = %v after %v", err, took)
	}
	if w.LastError() == nil {
		t.Error("LastError is nil after a reload ran out of time")
	}
	if g := genOf(w.Current().Hosts()[0]); g != "g1" {
		t.Errorf("serving %s", g)
	}
	w.Timeout = 0
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	within(t, time.Second, "a cancelled ReloadContext", func() {
		if err := w.ReloadContext(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("ReloadContext = %v", err)
		}
	})
	w.Settle = -1
	if err := w.Reload(); err != nil || w.LastError() != nil || genOf(w.Current().Hosts()[0]) != "g2" {
		t.Errorf("Reload once settled = %v", err)
	}
}

// TestWatcherStopsDuringReload: Run returns at once when its context ends
// while a reload waits for the files to settle (SIGTERM during an edit),
// and the cut-short reload is no failure.
func TestWatcherStopsDuringReload(t *testing.T) {
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g1", 2, false)})
	w := &Watcher{Dir: dir, Debounce: 10 * time.Millisecond, Settle: -1}
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	w.Settle = time.Hour // before Run: read only by the reloads it starts
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	time.Sleep(100 * time.Millisecond) // Run's first check waits for fleet.yaml, written just now, to settle
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(genFleet("g2", 2, false)), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // and starts over: the file changed
	cancel()
	within(t, time.Second, "Run after cancel", func() {
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if err := w.LastError(); err != nil {
		t.Errorf("LastError after a reload cut short by shutdown: %v", err)
	}
}

// TestLoadChanging: a file that changes between the two reads is not used.
func TestLoadChanging(t *testing.T) {
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g1", 2, false)})
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	st, err := scan(root, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(genFleet("g1", 3, false)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(root, dir, st); !errors.Is(err, errChanging) {
		t.Errorf("readAll of a file that changed since the scan = %v", err)
	}
}

// TestWatcherNeverServesHalf: an editor that writes a file in place in two
// halves, pausing for less than Settle in between, is never served half
// (the first half alone is valid YAML with fewer hosts), neither by Run
// nor by a SIGHUP reload during the pause.
func TestWatcherNeverServesHalf(t *testing.T) {
	const hosts = 40
	full := genFleet("g2", hosts, false)
	cut := strings.Index(full, "  - {mac: \"52:54:00:00:00:14\"") // a host boundary
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g1", hosts, false)})
	w, reloads, _ := startWatcherSettle(t, dir, 0) // the default, 1s

	f, err := os.OpenFile(filepath.Join(dir, "fleet.yaml"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(full[:cut]); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	sighup := make(chan error, 1)
	go func() { sighup <- w.Reload() }()
	time.Sleep(300 * time.Millisecond) // past Debounce, well within Settle
	if _, err := f.WriteString(full[cut:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := <-sighup; err != nil {
		t.Errorf("SIGHUP reload: %v", err)
	}
	s := waitReload(t, reloads, "g2")
	for {
		if s.Len() != hosts {
			t.Fatalf("served a snapshot of %d hosts, want %d", s.Len(), hosts)
		}
		select {
		case s = <-reloads:
			continue
		case <-time.After(time.Second):
		}
		break
	}
	if w.Current().Len() != hosts {
		t.Errorf("serving %d hosts", w.Current().Len())
	}
}
