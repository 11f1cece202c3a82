package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles creates a profiles directory holding files.
func writeFiles(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadErrors loads files and returns each error as printed, with the
// directory stripped from file names.
func loadErrors(t *testing.T, files map[string]string) []string {
	t.Helper()
	dir := writeFiles(t, files)
	_, err := Load(dir)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load error is %T, not an ErrorList: %v", err, err)
	}
	return strings.Split(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""), "\n")
}

// mustLoad loads files and fails the test on any error.
func mustLoad(t testing.TB, files map[string]string) *Set {
	t.Helper()
	set, err := Load(writeFiles(t, files))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return set
}

func mustMAC(t testing.TB, s string) []byte {
	t.Helper()
	hw, err := ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

// A valid catalog for tests about something else.
const (
	testSHA     = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testCatalog = `versions:
  - name: v1
    number: 1
    channel: stable
    image: {url: v1.img.zst, sha256: "` + testSHA + `"}
    installer: {kernel: vmlinuz, initrd: initrd.img, cmdline: console=ttyS0}
  - name: v2
    number: 2
    channel: canary
    image: {url: v2.img, sha256: "` + testSHA + `"}
    installer: {kernel: v2/vmlinuz, initrd: v2/initrd.img}
layouts:
  - name: l1
    disk: {select: smallest}
    partitions:
      - {name: cidata, size: 16MiB, type: linux, content: config}
  - name: l2
    disk: {path: /dev/sda}
    partitions:
      - {name: cidata, size: 16MiB, type: linux, content: config}
      - {name: data, size: rest, type: linux, filesystem: ext4, preserve: true}
  - name: bare
    disk: {select: largest}
`
	// Real keys and hashes, generated for these tests.
	testKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPYKhj0ARBUk7F5sJD8Md+68qt0u5UZLlllfq+jt/tXC ops@example.com"
	testKey2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMGOtVYnRaHlpKi2bPQqLo9+xcjdNhPDxbbhltSufgRF alice@example.com"
	testHash = "$6$rackbootdemo0001$CxjM0jmkewtdNj9p/Rj31Dr8SO6FZcUYa5lwJUi77zN7vsm1ehxfJ/9T7uItaac7XEdYKGCZ3eLhafAUdFILb0"
)
