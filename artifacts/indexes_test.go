package artifacts

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeParse reads a one-line index "SIZE STORED SHA256", counting its
// calls.
func fakeParse(calls *atomic.Int32) func(io.Reader) (Index, error) {
	return func(r io.Reader) (Index, error) {
		calls.Add(1)
		b, err := io.ReadAll(r)
		if err != nil {
			return Index{}, err
		}
		var ix Index
		f := strings.Fields(string(b))
		if len(f) != 3 {
			return Index{}, errors.New("not an index")
		}
		ix.SHA256 = f[2]
		for i, p := range []*int64{&ix.Size, &ix.Stored} {
			for _, c := range f[i] {
				*p = *p*10 + int64(c-'0')
			}
		}
		return ix, nil
	}
}

func TestIndexes(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "images"), 0o755)
	p := filepath.Join(dir, "images", "v1.rbidx")
	if err := os.WriteFile(p, []byte("1000 300 aaaa"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "images", "bad.rbidx"), []byte("garbage"), 0o644)
	var calls atomic.Int32
	x := &Indexes{Dir: dir, Parse: fakeParse(&calls)}
	for range 3 {
		stored, raw, sum, err := x.Image("images/v1.rbidx")
		if err != nil || stored != 300 || raw != 1000 || sum != "aaaa" {
			t.Fatalf("Image = %d, %d, %q, %v", stored, raw, sum, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("parsed %d times, want once", n)
	}
	// A new index under the same name is read anew.
	os.WriteFile(p, []byte("2000 400 bbbb"), 0o644)
	later := time.Now().Add(time.Minute)
	os.Chtimes(p, later, later)
	if _, raw, sum, err := x.Image("images/v1.rbidx"); err != nil || raw != 2000 || sum != "bbbb" {
		t.Errorf("after the file changed: %d, %q, %v", raw, sum, err)
	}
	for _, tt := range []struct{ name, want string }{
		{"images/missing.rbidx", "chunk index images/missing.rbidx"},
		{"images/bad.rbidx", "images/bad.rbidx: not an index"},
		{"../x.rbidx", "x.rbidx"},
		{"images", "not a regular file"},
	} {
		if _, _, _, err := x.Image(tt.name); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Image(%q) error = %v, want one naming %q", tt.name, err, tt.want)
		}
	}
	if _, _, _, err := (&Indexes{Dir: dir}).Image("images/v1.rbidx"); err == nil {
		t.Error("no Parse: no error")
	}
}

// TestIndexesTwin finds an index by the digest of the file it was
// imported from, skipping unreadable ones.
func TestIndexesTwin(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "images"), 0o755)
	os.WriteFile(filepath.Join(dir, "images", "a.rbidx"), []byte("1000 300 aaaa"), 0o644)
	os.WriteFile(filepath.Join(dir, "images", "b.rbidx"), []byte("1000 300 bbbb"), 0o644)
	os.WriteFile(filepath.Join(dir, "images", "bad.rbidx"), []byte("garbage"), 0o644)
	os.WriteFile(filepath.Join(dir, "images", "c.txt"), []byte("1000 300 cccc"), 0o644)
	var calls atomic.Int32
	parse := fakeParse(&calls)
	// The fake's source digest is its image digest, upper-cased.
	x := &Indexes{Dir: dir, Parse: func(r io.Reader) (Index, error) {
		ix, err := parse(r)
		ix.Source = strings.ToUpper(ix.SHA256)
		return ix, err
	}}
	for _, tt := range []struct {
		source, want string
		ok           bool
	}{{"bbbb", "images/b.rbidx", true}, {"AAAA", "images/a.rbidx", true}, {"cccc", "", false}, {"", "", false}} {
		if got, ok := x.Twin("images", tt.source); got != tt.want || ok != tt.ok {
			t.Errorf("Twin(%q) = %q, %v; want %q, %v", tt.source, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := x.Twin("nowhere", "aaaa"); ok {
		t.Error("Twin in a missing directory found something")
	}
	before := calls.Load()
	x.Twin("images", "bbbb")
	if calls.Load() != before {
		t.Error("Twin parsed the indexes again")
	}
}
