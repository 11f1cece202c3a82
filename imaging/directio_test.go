package imaging

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func TestDiskFileWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := openDirect(f, p)
	defer d.Close()
	if d.direct == nil {
		t.Log("no O_DIRECT on this file system; checking the buffered path only")
	}
	aligned := alignedBuffer(64 << 10)
	if uintptr(unsafe.Pointer(&aligned[0]))%directAlign != 0 || len(aligned) != 64<<10 {
		t.Fatal("alignedBuffer is not aligned")
	}
	copy(aligned, pattern(len(aligned), 1))
	writes := []struct {
		off int64
		b   []byte
	}{
		{0, aligned},                           // direct
		{64 << 10, aligned[1:4097]},            // unaligned address: buffered
		{128 << 10, aligned[:1000]},            // short tail: buffered
		{192<<10 + 512, aligned[:directAlign]}, // unaligned offset: buffered
	}
	for _, w := range writes {
		if n, err := d.WriteAt(w.b, w.off); err != nil || n != len(w.b) {
			t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", len(w.b), w.off, n, err)
		}
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		got := make([]byte, len(w.b))
		if _, err := f.ReadAt(got, w.off); err != nil || !bytes.Equal(got, w.b) {
			t.Errorf("bytes at %d differ (%v)", w.off, err)
		}
	}
}
