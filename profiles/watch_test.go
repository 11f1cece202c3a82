package profiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// genFleet is a fleet in which every value carries the generation gen: the
// hostnames (gen-N) and the installer's cmdline (gen=gen). A snapshot is
// whole when every host of it carries the same generation. An invalid
// fleet ends with a typo'd key after hosts that look fine.
func genFleet(gen string, hosts int, invalid bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "defaults:\n  installer: {kernel: vmlinuz, cmdline: gen=%s}\nhosts:\n", gen)
	for i := range hosts {
		fmt.Fprintf(&b, "  - {mac: \"52:54:00:00:%02x:%02x\", hostname: %s-%d}\n", i>>8, i&0xff, gen, i)
	}
	if invalid {
		b.WriteString("  - {mac: \"52:54:00:ff:ff:ff\", hostnmae: typo}\n")
	}
	return b.String()
}

// writeAtomic saves like an editor: a temporary file renamed over the old.
func writeAtomic(t testing.TB, dir, name, body string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// genOf is the generation a host was loaded from.
func genOf(h *Host) string { g, _, _ := strings.Cut(h.Hostname, "-"); return g }

// startWatcher loads dir and follows it until the test ends.
func startWatcher(t *testing.T, dir string) (w *Watcher, reloads chan *Set, errs chan error) {
	t.Helper()
	return startWatcherSettle(t, dir, 30*time.Millisecond)
}

// startWatcherSettle is startWatcher with the files' settle time.
func startWatcherSettle(t *testing.T, dir string, settle time.Duration) (w *Watcher, reloads chan *Set, errs chan error) {
	t.Helper()
	reloads, errs = make(chan *Set, 100), make(chan error, 100)
	w = &Watcher{Dir: dir, Debounce: 20 * time.Millisecond, Settle: settle,
		OnReload: func(s *Set) { reloads <- s },
		OnError:  func(err error) { errs <- err }}
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	<-reloads
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w, reloads, errs
}

func waitReload(t *testing.T, reloads chan *Set, gen string) *Set {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case s := <-reloads:
			if h := s.Hosts(); len(h) > 0 && genOf(h[0]) == gen {
				return s
			}
		case <-timeout:
			t.Fatalf("generation %s was never loaded", gen)
		}
	}
}

func waitError(t *testing.T, errs chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the invalid edit was never reported")
	}
	return nil
}

func TestWatcherFollowsEdits(t *testing.T) {
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g1", 3, false)})
	w, reloads, errs := startWatcher(t, dir)

	writeAtomic(t, dir, "fleet.yaml", genFleet("g2", 3, false))
	if s := waitReload(t, reloads, "g2"); w.Current() != s {
		t.Error("Current is not the snapshot just loaded")
	}

	writeAtomic(t, dir, "fleet.yaml", genFleet("g3", 3, true))
	err := waitError(t, errs)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || list[0].Line != 7 || !strings.HasSuffix(list[0].File, "fleet.yaml") {
		t.Errorf("error = %v", err)
	}
	if got := genOf(w.Current().Hosts()[0]); got != "g2" {
		t.Errorf("serving %s after an invalid edit, want g2", got)
	}
	if w.LastError() == nil {
		t.Error("LastError is nil after an invalid edit")
	}

	// A file written in place, a new file, and a removed file.
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(genFleet("g4", 3, false)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitReload(t, reloads, "g4")
	if err := w.LastError(); err != nil {
		t.Errorf("LastError after a good edit: %v", err)
	}
	writeAtomic(t, dir, "more.yml", "hosts:\n  - {mac: \"52:54:00:99:00:01\", hostname: g4-more}\n")
	if s := waitReload(t, reloads, "g4"); s.Len() != 4 {
		t.Errorf("after adding a file: %d hosts", s.Len())
	}
	if err := os.Remove(filepath.Join(dir, "more.yml")); err != nil {
		t.Fatal(err)
	}
	if s := waitReload(t, reloads, "g4"); s.Len() != 3 {
		t.Errorf("after removing a file: %d hosts", s.Len())
	}
}

// TestWatcherReloadForced is SIGHUP's path, without Run.
func TestWatcherReloadForced(t *testing.T) {
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g1", 2, false)})
	var reloads atomic.Int32
	w := &Watcher{Dir: dir, Settle: 10 * time.Millisecond, OnReload: func(*Set) { reloads.Add(1) }}
	if _, ok := w.Lookup(mustMAC(t, "52:54:00:00:00:01")); ok || w.Current() != nil || w.DefaultInstaller() != nil {
		t.Fatal("a Watcher serves before its first Reload")
	}
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	first := w.Current()
	// Unchanged files: no new snapshot.
	if err := w.Reload(); err != nil || w.Current() != first || reloads.Load() != 1 {
		t.Errorf("reloading unchanged files: %v, %d reloads, same snapshot %v", err, reloads.Load(), w.Current() == first)
	}
	writeAtomic(t, dir, "fleet.yaml", genFleet("g2", 2, true))
	if err := w.Reload(); err == nil || w.Current() != first {
		t.Errorf("invalid files: Reload = %v, snapshot replaced %v", err, w.Current() != first)
	}
	if h, ok := w.Lookup(mustMAC(t, "52:54:00:00:00:01")); !ok || genOf(h) != "g1" {
		t.Errorf("Lookup after an invalid edit = %+v, %v", h, ok)
	}
	// Back to what is served: the error is gone, nothing is swapped, and
	// OnReload says the snapshot is valid again.
	writeAtomic(t, dir, "fleet.yaml", genFleet("g1", 2, false))
	if err := w.Reload(); err != nil || w.LastError() != nil || w.Current() != first || reloads.Load() != 2 {
		t.Errorf("revert: Reload = %v, LastError = %v, %d reloads", err, w.LastError(), reloads.Load())
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := w.Reload(); err == nil || w.Current() != first {
		t.Errorf("removed directory: Reload = %v", err)
	}
}

func TestWatcherDebounces(t *testing.T) {
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g0", 2, false)})
	var reloads atomic.Int32
	got := make(chan *Set, 100)
	w := &Watcher{Dir: dir, Debounce: 250 * time.Millisecond, Settle: 30 * time.Millisecond, OnReload: func(s *Set) { reloads.Add(1); got <- s }}
	if err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	<-got
	reloads.Store(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	for i := 1; i <= 20; i++ {
		writeAtomic(t, dir, "fleet.yaml", genFleet(fmt.Sprintf("g%d", i), 2, false))
	}
	waitReload(t, got, "g20")
	time.Sleep(500 * time.Millisecond)
	// One reload for the burst, perhaps one for the check Run makes when
	// its watch is in place, and one for a writer stalled by a busy
	// machine: not twenty.
	if n := reloads.Load(); n > 3 {
		t.Errorf("%d reloads for one burst of 20 writes", n)
	}
}

// TestHotReload is the acceptance test of hot reload: while clients look
// hosts up without pause, the files are rewritten many times, valid and
// invalid. No lookup may fail, every snapshot a client sees must be whole
// (one generation), generations only move forward, and no invalid edit is
// ever served.
func TestHotReload(t *testing.T) {
	const hosts = 200
	dir := writeFiles(t, map[string]string{"fleet.yaml": genFleet("g0", hosts, false)})
	w, reloads, errs := startWatcher(t, dir)
	macs := make([][]byte, hosts)
	for i := range macs {
		macs[i] = mustMAC(t, fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff))
	}

	var (
		stop     atomic.Bool
		lookups  atomic.Int64
		problems = make(chan string, 100)
		seenMu   sync.Mutex
		seen     = map[string]bool{}
		wg       sync.WaitGroup
	)
	report := func(format string, args ...any) {
		select {
		case problems <- fmt.Sprintf(format, args...):
		default:
		}
	}
	for range 2 {
		wg.Go(func() {
			last := 0
			for !stop.Load() {
				s := w.Current() // one snapshot per request
				gen := ""
				for _, mac := range macs {
					h, ok := s.Lookup(mac)
					lookups.Add(1)
					if !ok {
						report("lookup of %x failed", mac)
						continue
					}
					g := genOf(h)
					if gen == "" {
						gen = g
					}
					if g != gen || h.Installer.Cmdline != "gen="+gen {
						report("mixed snapshot: %s and %s (%s)", gen, g, h.Installer.Cmdline)
					}
					if strings.HasPrefix(g, "bad") {
						report("invalid edit served: %s", g)
					}
				}
				var n int
				fmt.Sscanf(strings.TrimPrefix(gen, "bad"), "g%d", &n)
				if n < last {
					report("generation went back from %d to %d", last, n)
				}
				last = n
				seenMu.Lock()
				seen[gen] = true
				seenMu.Unlock()
			}
		})
	}

	for i := 1; i <= 30; i++ {
		gen := fmt.Sprintf("g%d", i)
		if i%3 == 0 {
			writeAtomic(t, dir, "fleet.yaml", genFleet("bad"+gen, hosts, true))
			waitError(t, errs)
			continue
		}
		writeAtomic(t, dir, "fleet.yaml", genFleet(gen, hosts, false))
		waitReload(t, reloads, gen)
	}
	stop.Store(true)
	wg.Wait()
	close(problems)
	for p := range problems {
		t.Error(p)
	}
	if lookups.Load() == 0 || len(seen) < 5 {
		t.Errorf("%d lookups saw %d generations", lookups.Load(), len(seen))
	}
	t.Logf("%d lookups over %d generations", lookups.Load(), len(seen))
}
