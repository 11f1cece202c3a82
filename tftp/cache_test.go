package tftp

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// cacheDir is a root with one file, opened as the server opens its root.
func cacheDir(t *testing.T, name string, b []byte) (string, *os.Root) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, name), b)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return dir, root
}

// lookup does what open does before it asks the memory: a Stat under the
// root.
func lookup(t *testing.T, m *memory, root *os.Root, rel string) ([]byte, bool) {
	t.Helper()
	fi, err := root.Stat(rel)
	if err != nil {
		t.Fatal(err)
	}
	return m.get(root, rel, fi)
}

// sameArray reports whether a and b are the same bytes in memory, not just
// equal ones: a cache hit hands out the one copy it read.
func sameArray(a, b []byte) bool {
	return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0]
}

func TestMemoryInvalidation(t *testing.T) {
	old := bytes.Repeat([]byte("old!"), 1000)
	dir, root := cacheDir(t, "ipxe.efi", old)
	path := filepath.Join(dir, "ipxe.efi")
	m := newMemory(DefaultCacheSize)
	// Files change here faster than a second apart; sleeping past the
	// clock tick before each change keeps their identities apart.
	m.settle = 0

	first, ok := lookup(t, m, root, "ipxe.efi")
	if !ok || !bytes.Equal(first, old) {
		t.Fatalf("first read: ok %v, %d bytes; want the file", ok, len(first))
	}
	if again, _ := lookup(t, m, root, "ipxe.efi"); !sameArray(first, again) {
		t.Fatal("second lookup read the file again; want the copy in memory")
	}

	// Each change must be seen on the next lookup, including those that keep
	// the size and put the modification time back.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	mtime := fi.ModTime()
	changes := []struct {
		name   string
		change func(t *testing.T) []byte // returns the new contents
	}{
		{"rewritten in place, same size", func(t *testing.T) []byte {
			b := bytes.Repeat([]byte("new1"), 1000)
			writeFile(t, path, b)
			return b
		}},
		{"rewritten in place, same size and mtime restored", func(t *testing.T) []byte {
			if runtime.GOOS != "linux" {
				t.Skip("only Linux's change time tells this rewrite apart")
			}
			b := bytes.Repeat([]byte("new2"), 1000)
			writeFile(t, path, b)
			if err := os.Chtimes(path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"replaced by rename", func(t *testing.T) []byte {
			b := bytes.Repeat([]byte("new3"), 1000)
			tmp := filepath.Join(dir, ".tmp")
			writeFile(t, tmp, b)
			if err := os.Chtimes(tmp, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"grown", func(t *testing.T) []byte {
			b := bytes.Repeat([]byte("new4"), 2000)
			writeFile(t, path, b)
			return b
		}},
		{"emptied", func(t *testing.T) []byte {
			writeFile(t, path, nil)
			return []byte{}
		}},
	}
	prev := first
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			time.Sleep(20 * time.Millisecond)
			want := c.change(t)
			got, ok := lookup(t, m, root, "ipxe.efi")
			if !ok || !bytes.Equal(got, want) {
				t.Fatalf("after the change: ok %v, %q...; want the new contents", ok, got[:min(len(got), 8)])
			}
			if len(want) > 0 {
				if again, _ := lookup(t, m, root, "ipxe.efi"); !sameArray(got, again) {
					t.Error("the new contents were not kept in memory")
				}
			}
			if bytes.Equal(prev, want) {
				t.Fatal("test bug: the change did not change the contents")
			}
			prev = got
		})
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	m.forget("ipxe.efi")
	if len(m.files) != 0 || m.used != 0 {
		t.Errorf("after forget: %d files, %d bytes held; want none", len(m.files), m.used)
	}
}

func TestMemoryBudget(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b", "c"} {
		writeFile(t, filepath.Join(dir, name), bytes.Repeat([]byte(name), 1000))
	}
	writeFile(t, filepath.Join(dir, "big"), make([]byte, 2501))
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	m := newMemory(2500) // room for two of a, b, c
	m.settle = 0

	a, _ := lookup(t, m, root, "a")
	lookup(t, m, root, "b")
	if again, _ := lookup(t, m, root, "a"); !sameArray(a, again) { // a is now the most recent
		t.Fatal("a was read again")
	}
	if c, ok := lookup(t, m, root, "c"); !ok || !bytes.Equal(c, bytes.Repeat([]byte("c"), 1000)) {
		t.Fatal("c not served")
	}
	if _, ok := m.files["b"]; ok || m.used != 2000 || len(m.files) != 2 {
		t.Errorf("after c: files %v, %d bytes; want a and c, b evicted as least recently used", keys(m.files), m.used)
	}
	if again, _ := lookup(t, m, root, "a"); !sameArray(a, again) {
		t.Error("a was evicted instead of b")
	}
	// A file over the budget is never cached and evicts nothing.
	if _, ok := lookup(t, m, root, "big"); ok {
		t.Error("a file larger than the budget was cached")
	}
	if len(m.files) != 2 {
		t.Errorf("files %v after a too large file; want a and c still", keys(m.files))
	}
}

// TestMemoryOneReadPerStorm has many requests for an uncached file arrive
// at once: they must share one read, not each read the file.
func TestMemoryOneReadPerStorm(t *testing.T) {
	_, root := cacheDir(t, "ipxe.efi", bytes.Repeat([]byte{7}, 300_000))
	m := newMemory(DefaultCacheSize)
	m.settle = 0
	fi, err := root.Stat("ipxe.efi")
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]byte, 50)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], _ = m.get(root, "ipxe.efi", fi) })
	}
	wg.Wait()
	for i := range got {
		if !sameArray(got[0], got[i]) {
			t.Fatalf("request %d got its own copy; want one read shared by all", i)
		}
	}
}

// TestMemorySettle: a file is cached only once it has not changed for the
// settle time, so that a rewrite within one tick of the file system's clock
// cannot leave a stale copy.
func TestMemorySettle(t *testing.T) {
	_, root := cacheDir(t, "ipxe.efi", []byte("fresh"))
	m := newMemory(DefaultCacheSize)
	m.settle = 200 * time.Millisecond
	if _, ok := lookup(t, m, root, "ipxe.efi"); ok || len(m.files) != 0 {
		t.Fatal("a file written just now was cached")
	}
	time.Sleep(m.settle)
	if b, ok := lookup(t, m, root, "ipxe.efi"); !ok || string(b) != "fresh" || len(m.files) != 1 {
		t.Fatalf("after the settle time: ok %v, %q; want it cached", ok, b)
	}
}

// TestServeFromMemory checks that a transfer of a cached file holds no
// descriptor of it (the server sends from memory), while with CacheSize -1
// it reads the open file.
func TestServeFromMemory(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		cache  int64
		static bool // the files just written are cached at once
		wantFD bool
	}{{"default", 0, false, false}, {"no cache", -1, false, true}, {"static, just written", 0, true, false}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, &Server{CacheSize: tt.cache, Static: tt.static})
			if !tt.static {
				time.Sleep(settleTime + 100*time.Millisecond) // the files must have settled
			}
			path, err := filepath.EvalSymlinks(filepath.Join(h.root, "ipxe.efi"))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				c := newRawClient(t, h.addr)
				c.rrq("ipxe.efi")
				c.expect(opDATA)
				if got := openFD(t, path); got != tt.wantFD {
					t.Errorf("request %d: server holds a descriptor of the file: %v, want %v", i+1, got, tt.wantFD)
				}
				c.sendError(0, "enough")
				if tr := h.next(t); tr.Outcome != Aborted {
					t.Fatalf("outcome %v (%v), want aborted", tr.Outcome, tr.Err)
				}
			}
			got, _, err := get(h.client(t, 1468, true), "ipxe.efi")
			if err != nil || !bytes.Equal(got, h.files["ipxe.efi"]) {
				t.Fatalf("download: %v, %d bytes; want the file", err, len(got))
			}
		})
	}
}

// openFD reports whether this process has path open.
func openFD(t *testing.T, path string) bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && l == path {
			return true
		}
	}
	return false
}

// TestServeCachedFileChanges serves a file from memory, then changes it
// under the running server: the next download must be the new contents,
// and a file turned into a link out of the root must be refused, not served
// from memory.
func TestServeCachedFileChanges(t *testing.T) {
	t.Parallel()
	outside := filepath.Join(t.TempDir(), "secret")
	writeFile(t, outside, bytes.Repeat([]byte("secret!!"), 37_500))
	h := start(t, &Server{})
	time.Sleep(settleTime + 100*time.Millisecond) // the files must have settled
	path := filepath.Join(h.root, "ipxe.efi")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	fetch := func(t *testing.T) ([]byte, Transfer, error) {
		t.Helper()
		got, _, err := get(h.client(t, 1468, true), "ipxe.efi")
		return got, h.next(t), err
	}
	for i := range 2 {
		if got, tr, err := fetch(t); err != nil || !bytes.Equal(got, h.files["ipxe.efi"]) || tr.Outcome != OK {
			t.Fatalf("download %d: %v, outcome %v; want the file", i+1, err, tr.Outcome)
		}
	}

	changed := bytes.Repeat([]byte("changed!"), 37_500) // the same 300,000 bytes
	writeFile(t, path, changed)
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got, _, err := fetch(t); err != nil || !bytes.Equal(got, changed) {
		t.Fatalf("after an in-place rewrite: %v, %q...; want the new contents", err, got[:min(len(got), 8)])
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, path); err != nil {
		t.Fatal(err)
	}
	_, tr, err := fetch(t)
	if err == nil || tr.Outcome != Denied {
		t.Fatalf("after ipxe.efi became a link out of the root: err %v, outcome %v; want denied", err, tr.Outcome)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, tr, err := fetch(t); err == nil || tr.Outcome != NotFound {
		t.Fatalf("after ipxe.efi was removed: err %v, outcome %v; want not found", err, tr.Outcome)
	}
}

func keys(m map[string]*image) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
