package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestEfivarfsFiles runs efivarfs on a plain directory: the file format
// (attributes, then the value), the names of the global namespace only,
// and a missing variable.
func TestEfivarfsFiles(t *testing.T) {
	dir := t.TempDir()
	e := efivarfs{dir: dir}
	// Another vendor's variable, which names() must not list.
	os.WriteFile(filepath.Join(dir, "ClientId-9fb9a8a1-2f4a-43a6-889c-d0f7b6c47ad5"), []byte{3, 0, 0, 0, 1}, 0o644)

	if err := e.set("BootNext", []byte{6, 0}); err != nil {
		t.Fatal(err)
	}
	if err := e.set("BootOrder", []byte{1, 0, 2, 0}); err != nil {
		t.Fatal(err)
	}
	// A shorter value replaces a longer one entirely.
	if err := e.set("BootOrder", []byte{1, 0}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "BootOrder-"+efiGlobalVariable))
	if err != nil {
		t.Fatal(err)
	}
	// On a plain file the old tail would stay without O_TRUNC; efivarfs
	// replaces the whole value with each write. Only the head is checked.
	if !bytes.HasPrefix(raw, []byte{7, 0, 0, 0, 1, 0}) {
		t.Errorf("file %x, want attributes NV|BS|RT then the value", raw)
	}
	got, err := e.get("BootNext")
	if err != nil || !bytes.Equal(got, []byte{6, 0}) {
		t.Errorf("get BootNext = %x, %v", got, err)
	}
	names, err := e.names()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"BootNext", "BootOrder"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if _, err := e.get("BootCurrent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("get of a missing variable: %v, want fs.ErrNotExist", err)
	}
	os.WriteFile(filepath.Join(dir, "Timeout-"+efiGlobalVariable), []byte{7, 0}, 0o644)
	if _, err := e.get("Timeout"); err == nil {
		t.Error("a file shorter than the attributes was read")
	}
}

// TestEfivarfsImmutable writes a variable whose file is immutable, as
// efivarfs makes the files of variables it does not know. Setting the flag
// needs CAP_LINUX_IMMUTABLE and a file system with flags: without them the
// test skips.
func TestEfivarfsImmutable(t *testing.T) {
	dir := t.TempDir()
	e := efivarfs{dir: dir}
	p := filepath.Join(dir, "Boot0006-"+efiGlobalVariable)
	if err := os.WriteFile(p, []byte{7, 0, 0, 0, 1, 2}, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := setImmutable(p, true); err != nil {
		t.Skipf("cannot make a test file immutable here: %v", err)
	}
	t.Cleanup(func() { setImmutable(p, false) })
	if err := os.WriteFile(p, []byte{7, 0, 0, 0, 9}, 0o644); err == nil {
		t.Fatal("an immutable file was written: the test proves nothing")
	}
	if err := e.set("Boot0006", []byte{3, 4}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.get("Boot0006"); err != nil || !bytes.Equal(got, []byte{3, 4}) {
		t.Errorf("get = %x, %v; want 0304", got, err)
	}
}

// setImmutable is chattr +i or -i.
func setImmutable(p string, on bool) error {
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	flags &^= fsImmutable
	if on {
		flags |= fsImmutable
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
}
