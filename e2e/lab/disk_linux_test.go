package lab

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDiskWritten(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	steps := []struct {
		name  string
		write func() error
		want  bool
	}{
		{"blank sparse disk", func() error { return f.Truncate(64 << 20) }, false},
		{"zeros written: allocated, still blank", func() error { _, err := f.WriteAt(make([]byte, 4096), 8<<20); return err }, false},
		{"one byte written", func() error { _, err := f.WriteAt([]byte{1}, 40<<20); return err }, true},
	}
	for _, s := range steps {
		if err := s.write(); err != nil {
			t.Fatal(err)
		}
		if got, err := DiskWritten(p); err != nil || got != s.want {
			t.Errorf("%s: DiskWritten = %v, %v; want %v", s.name, got, err, s.want)
		}
	}
}
