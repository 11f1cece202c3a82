package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/profiles"
)

// testImages are two versions of an image: random bytes with a zero
// region, and the same with a few bytes changed in the middle and a
// little appended, as a package update changes a disk image.
func testImages(t *testing.T) (v1, v2 []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(14, 14))
	v1 = make([]byte, 4<<20)
	for i := range v1 {
		v1[i] = byte(r.Uint32())
	}
	clear(v1[1<<20 : 2<<20])
	v2 = bytes.Clone(v1)
	copy(v2[3<<20:], "a package update")
	v2 = append(v2, bytes.Repeat([]byte("new file "), 1000)...)
	return v1, v2
}

func runImageCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runImage(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

var newChunksRE = regexp.MustCompile(`\nnew: +(\d+) chunks, `)

func TestImageAdd(t *testing.T) {
	v1, v2 := testImages(t)
	work := t.TempDir()
	dir := filepath.Join(work, "artifacts")
	os.Mkdir(dir, 0o755)
	enc, _ := zstd.NewWriter(nil)
	os.WriteFile(filepath.Join(work, "v1.img.zst"), enc.EncodeAll(v1, nil), 0o644)
	enc.Close()
	os.WriteFile(filepath.Join(work, "v2.img"), v2, 0o644)

	code, out1, errs := runImageCmd(t, "add", filepath.Join(work, "v1.img.zst"), "--artifacts", dir, "--name", "base-1", "--number", "1", "--channel", "stable")
	if code != 0 {
		t.Fatalf("import v1: exit %d: %s", code, errs)
	}
	code, out2, errs := runImageCmd(t, "add", filepath.Join(work, "v2.img"), "--artifacts", dir, "--name", "base-2", "--number", "2", "--channel", "stable", "--kind", "whole-disk")
	if code != 0 {
		t.Fatalf("import v2: exit %d: %s", code, errs)
	}
	t.Logf("v1:\n%s\nv2:\n%s", out1, out2)
	n1, n2 := newChunksRE.FindStringSubmatch(out1), newChunksRE.FindStringSubmatch(out2)
	if n1 == nil || n2 == nil {
		t.Fatalf("no count of new chunks:\n%s\n%s", out1, out2)
	}
	if n1[1] == "0" || len(n2[1]) > 1 {
		t.Errorf("new chunks: %s for v1, %s for v2 (want some, then a few)", n1[1], n2[1])
	}
	if !regexp.MustCompile(`\nzero: +[1-9]\d* chunks, \d+ KiB not stored\n`).MatchString(out2) {
		t.Errorf("v2's output does not count its zero chunks:\n%s", out2)
	}
	for _, want := range []string{"index:  " + filepath.Join(dir, "images", "base-2.rbidx") + ", written\n",
		"    channel: stable\n    image: { url: images/base-2.rbidx, sha256: "} {
		if !strings.Contains(out2, want) {
			t.Errorf("v2's output lacks %q:\n%s", want, out2)
		}
	}

	// The entries, pasted into a catalog, load, and plan with the
	// index's sizes and v1 as v2's seed.
	entries := ""
	for _, out := range []string{out1, out2} {
		_, e, ok := strings.Cut(out, "catalog entry")
		if !ok {
			t.Fatalf("no catalog entry:\n%s", out)
		}
		entries += e[strings.Index(e, "\n")+1:]
	}
	prof := t.TempDir()
	fleet := "versions:\n" + entries + `layouts:
  - {name: l, disk: {select: largest}}
hosts:
  - {mac: 52:54:00:00:00:01, hostname: n1, channel: stable, layout: l, installer: {kernel: vmlinuz}}
`
	os.WriteFile(filepath.Join(prof, "fleet.yaml"), []byte(fleet), 0o644)
	set, err := profiles.Load(prof)
	if err != nil {
		t.Fatalf("the printed entries do not load: %v\n%s", err, fleet)
	}
	h, _ := set.Lookup([]byte{0x52, 0x54, 0, 0, 0, 1})
	old, _ := set.Version("base-1")
	p, err := planner(dir, readIndex).Plan(h, nil, old, "http://192.0.2.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if img := p.Image; h.Version.Name != "base-2" || img.RawSize != int64(len(v2)) || img.Size <= 0 || img.Seed == nil || img.Seed.Version != "base-1" {
		t.Errorf("plan image %+v, seed %+v", img, img.Seed)
	}
}

// TestImageAddExisting: importing again is harmless; another image under
// a name that has an index needs --force.
func TestImageAddExisting(t *testing.T) {
	v1, v2 := testImages(t)
	work := t.TempDir()
	dir := filepath.Join(work, "artifacts")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(work, "v1.img"), v1, 0o644)
	os.WriteFile(filepath.Join(work, "v2.img"), v2, 0o644)
	add := func(file string, more ...string) (int, string, string) {
		return runImageCmd(t, append([]string{"add", filepath.Join(work, file), "--artifacts", dir, "--name", "base"}, more...)...)
	}
	if code, _, errs := add("v1.img"); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if code, out, errs := add("v1.img"); code != 0 || !strings.Contains(out, "\nnew:    0 chunks, 0 B stored (0.0 % of 4.00 MiB)\n") || !strings.Contains(out, ", unchanged (") {
		t.Errorf("again: exit %d:\n%s%s", code, out, errs)
	}
	if code, _, errs := add("v2.img"); code != 1 || !strings.Contains(errs, "describes another image") || !strings.Contains(errs, "--force") {
		t.Errorf("another image: exit %d: %s", code, errs)
	}
	if code, out, errs := add("v2.img", "--force"); code != 0 || !strings.Contains(out, ", written\n") {
		t.Errorf("--force: exit %d:\n%s%s", code, out, errs)
	}
}

func TestImageAddUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "usage: rackboot image add"},
		{[]string{"add", "x.img"}, 2, "usage: rackboot image add"},
		{[]string{"add", "x.img", "--name", "a/b"}, 2, `--name: invalid name "a/b"`},
		{[]string{"add", "x.img", "--name", "a", "--kind", "disk"}, 2, `--kind: "disk": want whole-disk or partitions`},
		{[]string{"add", "x.img", "--name", "a", "--format", "bzip2"}, 2, `--format: "bzip2"`},
		{[]string{"add", "x.img", "--name", "a", "--number", "-1"}, 2, "--number: must not be negative"},
		{[]string{"add", filepath.Join(dir, "x.img"), "--name", "a", "--artifacts", filepath.Join(dir, "none")}, 1, "artifacts directory"},
		{[]string{"add", filepath.Join(dir, "x.img"), "--name", "a", "--artifacts", dir}, 1, "x.img: no such file"},
	} {
		code, _, errs := runImageCmd(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: exit %d, %q; want %d, %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}
