package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/profiles"
)

// checkFixture is the example fleet in a profiles directory of its own,
// with an artifacts directory holding its installer and images: demo-1.0's
// digest is made right in the catalog, demo-1.1 keeps the example's
// placeholder, which its file does not match.
type checkFixture struct {
	profiles, artifacts string
}

func newCheckFixture(t *testing.T) checkFixture {
	t.Helper()
	f := checkFixture{profiles: t.TempDir()}
	set := loadExamples(t)
	f.artifacts = exampleArtifacts(t, set, 1<<20)
	for _, name := range []string{"vmlinuz", "initrd.img"} {
		if err := os.WriteFile(filepath.Join(f.artifacts, name), []byte("boot "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("examples: %v", err)
	}
	for _, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(src) == "catalog.yaml" {
			v, _ := set.Version("demo-1.0")
			b = bytes.Replace(b, []byte(v.Image.SHA256), []byte(fileSum(t, filepath.Join(f.artifacts, v.Image.URL))), 1)
		}
		if err := os.WriteFile(filepath.Join(f.profiles, filepath.Base(src)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f checkFixture) load(t *testing.T) *profiles.Set {
	t.Helper()
	set, err := profiles.Load(f.profiles)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// hostOf returns a host of set that runs version name.
func hostOf(t *testing.T, set *profiles.Set, name string) *profiles.Host {
	t.Helper()
	for _, h := range set.Hosts() {
		if h.Version != nil && h.Version.Name == name {
			return h
		}
	}
	t.Fatalf("no host runs %s", name)
	return nil
}

func TestCatalogCheck(t *testing.T) {
	f := newCheckFixture(t)
	set := f.load(t)
	c := newCatalogCheck(f.artifacts, nil)
	hashed := map[string]int{}
	c.digests.Hashed = func(name string, _ int64) { hashed[name]++ }
	good, bad := hostOf(t, set, "demo-1.0"), hostOf(t, set, "demo-1.1")

	if why := c.Held(set, good, ""); !strings.Contains(why, "has not finished") {
		t.Errorf("before the first pass: held = %q, want held until checked", why)
	}
	st := c.Check(context.Background(), set)
	if !st.Checked || st.OK != 1 || st.Failed != 1 || st.Pending != 0 || len(st.Problems) != 1 {
		t.Fatalf("status = %+v, want 1 ok, 1 failed with one problem", st)
	}
	v11, _ := set.Version("demo-1.1")
	want := v11.Source + ": version demo-1.1: image demo-1.1.img.zst: its sha256 is " + fileSum(t, filepath.Join(f.artifacts, "demo-1.1.img.zst")) + ", the catalog says " + v11.Image.SHA256
	if !strings.HasPrefix(st.Problems[0], want) || !strings.Contains(v11.Source, "catalog.yaml:") {
		t.Errorf("problem = %q\nwant it to start with %q", st.Problems[0], want)
	}
	if why := c.Held(set, good, ""); why != "" {
		t.Errorf("a host of the good version is held: %q", why)
	}
	if why := c.Held(set, bad, ""); why != st.Problems[0] {
		t.Errorf("held = %q, want %q", why, st.Problems[0])
	}
	if why := c.Held(set, good, "demo-1.1"); why != st.Problems[0] {
		t.Errorf("a reinstall to the bad version: held = %q, want %q", why, st.Problems[0])
	}
	if hashed["demo-1.0.img.zst"] != 1 || hashed["demo-1.1.img.zst"] != 1 {
		t.Errorf("first pass hashed %v, want each image once", hashed)
	}

	// A second pass reads nothing again: the digests are remembered by
	// inode, size and modification time.
	c.Check(context.Background(), set)
	if hashed["demo-1.0.img.zst"] != 1 || hashed["demo-1.1.img.zst"] != 1 {
		t.Errorf("second pass hashed %v, want nothing new", hashed)
	}
	// An image replaced in place is read again, and found wrong.
	if err := os.WriteFile(filepath.Join(f.artifacts, "demo-1.0.img.zst"), []byte("not the image"), 0o644); err != nil {
		t.Fatal(err)
	}
	st = c.Check(context.Background(), set)
	if hashed["demo-1.0.img.zst"] != 2 || st.Failed != 2 {
		t.Errorf("after replacing demo-1.0's image: hashed %v, status %+v; want it read again and failed", hashed, st)
	}
	if why := c.Held(set, good, ""); !strings.Contains(why, "version demo-1.0: image demo-1.0.img.zst: its sha256 is") {
		t.Errorf("held = %q", why)
	}

	// A missing installer file holds the hosts that boot it, named once.
	os.Remove(filepath.Join(f.artifacts, "initrd.img"))
	st = c.Check(context.Background(), set)
	var initrd int
	for _, p := range st.Problems {
		if strings.Contains(p, "installer: initrd.img: no such file in the artifacts directory") {
			initrd++
		}
	}
	if initrd != 1 {
		t.Errorf("problems %q: want the missing initrd named once", st.Problems)
	}
	if why := c.Held(set, bad, ""); !strings.Contains(why, ": host "+bad.Hostname+": installer: initrd.img: no such file in the artifacts directory") {
		t.Errorf("held = %q, want the host's missing initrd", why)
	}
}

func TestCatalogCheckMissingImage(t *testing.T) {
	f := newCheckFixture(t)
	set := f.load(t)
	os.Remove(filepath.Join(f.artifacts, "demo-1.1.img.zst"))
	c := newCatalogCheck(f.artifacts, nil)
	st := c.Check(context.Background(), set)
	v11, _ := set.Version("demo-1.1")
	want := v11.Source + ": version demo-1.1: image demo-1.1.img.zst: no such file in the artifacts directory"
	if len(st.Problems) != 1 || st.Problems[0] != want {
		t.Errorf("problems = %q, want [%q]", st.Problems, want)
	}
	if why := c.Held(set, hostOf(t, set, "demo-1.1"), ""); why != want {
		t.Errorf("held = %q, want %q", why, want)
	}
}

// TestCatalogCheckChunked: a chunked version is checked by its index (of
// the catalog's image) and the presence of every chunk in the store.
func TestCatalogCheckChunked(t *testing.T) {
	f := newCheckFixture(t)
	img := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range img {
		img[i] = byte(r.Uint32() >> 28)
	}
	res, err := chunkstore.Import(context.Background(), bytes.NewReader(img), filepath.Join(f.artifacts, profiles.ChunkDir), chunkstore.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(f.artifacts, profiles.IndexDir), 0o755)
	if err := chunkstore.WriteIndexFile(filepath.Join(f.artifacts, profiles.IndexDir, "c1.rbidx"), res.Index); err != nil {
		t.Fatal(err)
	}
	catalog := "versions:\n" +
		"  - name: chunky\n    number: 20\n    image: {url: " + profiles.IndexDir + "/c1.rbidx, sha256: " + res.Index.Digest() + ", format: chunked}\n" +
		"    installer: {kernel: vmlinuz, initrd: initrd.img}\n" +
		"  - name: wrong\n    number: 21\n    image: {url: " + profiles.IndexDir + "/c1.rbidx, sha256: " + strings.Repeat("ab", 32) + ", format: chunked}\n" +
		"    installer: {kernel: vmlinuz, initrd: initrd.img}\n"
	if err := os.WriteFile(filepath.Join(f.profiles, "chunked.yaml"), []byte(catalog), 0o644); err != nil {
		t.Fatal(err)
	}
	set := f.load(t)
	c := newCatalogCheck(f.artifacts, nil)
	problems := func() []string {
		var ps []string
		for _, p := range c.Check(context.Background(), set).Problems {
			if strings.Contains(p, "chunky") || strings.Contains(p, "wrong") {
				ps = append(ps, p)
			}
		}
		return ps
	}
	ps := problems()
	if len(ps) != 1 || !strings.Contains(ps[0], "version wrong: image "+profiles.IndexDir+"/c1.rbidx: the index is of an image of sha256 "+res.Index.Digest()) {
		t.Errorf("problems = %q, want the wrong digest only", ps)
	}
	// A chunk lost from the store fails the version before any machine
	// fetches it.
	lost := res.Index.Chunks[len(res.Index.Chunks)/2].ID
	if err := os.Remove(chunkstore.ChunkPath(filepath.Join(f.artifacts, profiles.ChunkDir), lost)); err != nil {
		t.Fatal(err)
	}
	ps = problems()
	if len(ps) != 2 || !strings.Contains(ps[0], "version chunky: image "+profiles.IndexDir+"/c1.rbidx: 1 of its") || !strings.Contains(ps[0], "chunks are missing or damaged") {
		t.Errorf("problems = %q, want the lost chunk", ps)
	}
}
