package chunkstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/imaging/internal/testimage"
)

// FuzzReadIndex: the agent reads indexes from the network. Any input is
// refused or read into an index whose chunks cover the image exactly,
// and which writes back to the same bytes. The fuzzer mutates the body;
// its checksum is appended, or the checks behind it would never run.
func FuzzReadIndex(f *testing.F) {
	res, err := Import(context.Background(), bytes.NewReader(testimage.Bytes(1, 1<<20)), f.TempDir(), ImportOptions{})
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	res.Index.WriteTo(&buf)
	f.Add(buf.Bytes()[:buf.Len()-sha256.Size])
	f.Add(buf.Bytes()[:100])
	empty := &Index{MinChunk: MinChunk, AvgChunk: AvgChunk, MaxChunk: MaxChunk}
	buf.Reset()
	empty.WriteTo(&buf)
	f.Add(buf.Bytes()[:buf.Len()-sha256.Size])
	f.Fuzz(func(t *testing.T, body []byte) {
		sum := sha256.Sum256(body)
		b := append(body[:len(body):len(body)], sum[:]...)
		ix, err := ReadIndex(bytes.NewReader(b))
		if err != nil {
			return
		}
		var off int64
		for _, c := range ix.Chunks {
			if c.Offset != off || c.Size <= 0 || c.Size > int64(ix.MaxChunk) {
				t.Fatalf("chunk %+v at %d", c, off)
			}
			off += c.Size
		}
		if off != ix.Size {
			t.Fatalf("chunks cover %d bytes of %d", off, ix.Size)
		}
		var out bytes.Buffer
		if _, err := ix.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), b) {
			t.Fatalf("written back differs: %v", err)
		}
		back, err := ReadIndex(bytes.NewReader(out.Bytes()))
		if err != nil || !cmp.Equal(back, ix) {
			t.Fatalf("read back: %v", err)
		}
	})
}
