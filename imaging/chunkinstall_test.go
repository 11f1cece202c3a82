package imaging

import (
	"bytes"
	"context"
	"testing"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging/chunkstore"
	"github.com/rackboot/rackboot/imaging/internal/testimage"
)

// TestInstallChunked installs a whole-disk image from chunks on an empty
// disk, writes into its preserved partition, then installs the next
// version over it with the first as the seed: the image partitions hold
// the new version, the data survives, and only the changed chunks (and
// those under the table the first install rewrote) are fetched.
func TestInstallChunked(t *testing.T) {
	const imgSize = 24 * mib
	v1 := osImage(t, 512, imgSize, 1)
	root := partitionAt(t, v1, "root")
	copy(v1[root:], testimage.Bytes(5, imgSize-int(root)-(1<<20)))
	v2 := bytes.Clone(v1)
	for _, at := range []int64{root + 2*mib, root + 11*mib} {
		copy(v2[at:], bytes.Repeat([]byte("jq 1.6 "), 500))
	}
	dir := t.TempDir()
	r1, r2 := importBytes(t, dir, v1), importBytes(t, dir, v2)
	store := newStoreFS(dir)
	store.indexes["v1.rbidx"], store.indexes["v2.rbidx"] = r1.Index, r2.Index
	plan := func(ix *chunkstore.Index, url string, seed *agentapi.Seed) *agentapi.Plan {
		return &agentapi.Plan{
			Image: &agentapi.Image{URL: url, SHA256: ix.Digest(), Format: agentapi.FormatChunked, Chunks: "store",
				RawSize: ix.Size, Size: ix.StoredSize(), Seed: seed},
			Partitions: []agentapi.Partition{
				{Name: "config", Type: "linux", Size: 8 * mib, Content: agentapi.ContentConfigDrive},
				{Name: "data", Type: "linux", Size: agentapi.Rest, Preserve: true},
			},
			ConfigDrive: testNoCloud(t, "i-9"),
		}
	}
	in := testInstaller(t)
	in.Chunks = func(agentapi.Image) ChunkStore { return store }
	disk := newDisk(t, 128*mib)

	res, err := in.Install(context.Background(), plan(r1.Index, "v1.rbidx", nil), Target{Path: disk})
	if err != nil {
		t.Fatal(err)
	}
	checkImagePartitions(t, disk, v1)
	if res.Chunked == nil || res.Chunked.ChunksFetched+res.Chunked.ChunksZeroed+res.Chunked.ChunksInPlace != res.Chunked.Chunks ||
		res.Image.Written != imgSize || res.Image.SHA256 != r1.Index.Digest() {
		t.Fatalf("first install: %+v %+v", res.Image, res.Chunked)
	}
	data := partitionByName(t, disk, 512, "data")
	mark := []byte("kept across the reinstall")
	writeAt(t, disk, data.GetStart()+4096, mark)

	changed := 0
	old := map[chunkstore.ChunkID]bool{}
	for _, c := range r1.Index.Chunks {
		old[c.ID] = true
	}
	for _, c := range r2.Index.Chunks {
		if !old[c.ID] {
			changed++
		}
	}
	before := store.count()
	res, err = in.Install(context.Background(), plan(r2.Index, "v2.rbidx", &agentapi.Seed{Version: "v1", URL: "v1.rbidx"}), Target{Path: disk})
	if err != nil {
		t.Fatal(err)
	}
	checkImagePartitions(t, disk, v2)
	if got := readRange(t, disk, data.GetStart()+4096, int64(len(mark))); !bytes.Equal(got, mark) {
		t.Errorf("the preserved partition holds %q after the reinstall", got)
	}
	fetched := store.count() - before
	c := res.Chunked
	t.Logf("reinstall: %d chunks fetched (%d changed), %+v", fetched, changed, c)
	// The first install rewrote the image's head (the table extended)
	// and zeroed its backup GPT: those chunks are fetched again.
	if changed == 0 || fetched < changed || fetched > changed+3 || c.Reused()*10 < c.Size*9 {
		t.Errorf("reinstall fetched %d chunks, %d of them changed; reused %d of %d bytes", fetched, changed, c.Reused(), c.Size)
	}

	// A plan whose index is of another image is refused before writing.
	bad := plan(r2.Index, "v2.rbidx", nil)
	bad.Image.SHA256 = r1.Index.Digest()
	if _, err := in.Install(context.Background(), bad, Target{Path: disk}); err == nil {
		t.Error("an index of another image was accepted")
	}
	checkImagePartitions(t, disk, v2)
}

// partitionAt is the byte offset of the named partition of a whole-disk
// image.
func partitionAt(t *testing.T, img []byte, name string) int64 {
	t.Helper()
	p := writeFile(t, img)
	return partitionByName(t, p, 512, name).GetStart()
}

// checkImagePartitions compares the image's partitions on the disk with
// the image.
func checkImagePartitions(t *testing.T, disk string, img []byte) {
	t.Helper()
	for _, name := range []string{"boot", "root"} {
		part := partitionByName(t, disk, 512, name)
		got := readRange(t, disk, part.GetStart(), part.GetSize())
		if !bytes.Equal(got, img[part.GetStart():part.GetStart()+part.GetSize()]) {
			t.Errorf("partition %q differs from the image", name)
		}
	}
}
