package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/bench/internal/result"
	"github.com/rackboot/rackboot/imaging/chunkstore"
)

// TestUpdate runs P9's update on a small synthetic pair: both versions
// imported into a store served by the counting handler, v2 assembled over
// a copy of v1 with v1's index as the seed. The target must end as v2,
// having fetched only a small part of it, and the counter must have
// counted what the assembler says it received (plus the two indexes).
func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "v1.img"), filepath.Join(dir, "v2.img")
	if err := mkpair(flag.NewFlagSet("mkpair", flag.ContinueOnError), []string{"-size-mib", "16", v1, v2}); err != nil {
		t.Fatal(err)
	}
	www := filepath.Join(dir, "www")
	for _, v := range []string{"v1", "v2"} {
		f, err := os.Open(filepath.Join(dir, v+".img"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := chunkstore.Import(context.Background(), f, filepath.Join(www, "store"), chunkstore.ImportOptions{})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := chunkstore.WriteIndexFile(filepath.Join(www, v+".idx"), res.Index); err != nil {
			t.Fatal(err)
		}
	}
	c := &counter{next: &artifacts.Handler{Dir: www, Prefix: "/", ChunkStore: "store"}}
	ts := httptest.NewServer(c)
	defer ts.Close()

	target := filepath.Join(dir, "target.img")
	copyFile(t, v1, target)
	var out bytes.Buffer
	st := &step{tags: result.Tags{}, out: &out}
	err := assemble(context.Background(), flag.NewFlagSet("assemble", flag.ContinueOnError),
		[]string{"-index", ts.URL + "/v2.idx", "-seed", ts.URL + "/v1.idx", "-store", ts.URL + "/store", "-target", target}, st)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(target)
	want, _ := os.ReadFile(v2)
	if !bytes.Equal(got, want) {
		t.Fatal("the target is not v2")
	}
	rs, err := result.Read(&out)
	if err != nil || len(rs) != 1 {
		t.Fatalf("records %v, %v", rs, err)
	}
	m := rs[0].Metrics
	idx := fileSize(t, filepath.Join(www, "v1.idx")) + fileSize(t, filepath.Join(www, "v2.idx"))
	if served := c.bytes.Load(); served != int64(m["fetched"])+idx {
		t.Errorf("served %d bytes, the assembler fetched %v and the indexes are %d", served, m["fetched"], idx)
	}
	if m["fetched_raw"] <= 0 || m["fetched_raw"] > float64(len(want))/4 {
		t.Errorf("fetched %v raw bytes of a %d-byte image", m["fetched_raw"], len(want))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
