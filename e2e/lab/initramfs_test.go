package lab

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cpioEntry is what readNewc decodes of one member.
type cpioEntry struct {
	Name       string
	Mode       uint32
	RMaj, RMin uint32
	Data       string
}

// readNewc is an independent decoder of newc archives for the tests: it
// checks magic, field syntax and 4-byte alignment as the kernel does.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("offset %d field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		mode, size, rmaj, rmin, nameLen := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(nameLen)-1])
		if b[off+110+int(nameLen)-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		data := align(off + 110 + int(nameLen))
		next := align(data + int(size))
		if name == "TRAILER!!!" {
			if next != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-next)
			}
			return out
		}
		out = append(out, cpioEntry{Name: name, Mode: mode, RMaj: rmaj, RMin: rmin, Data: string(b[data : data+int(size)])})
		off = next
	}
}

func TestNewcWriter(t *testing.T) {
	var buf bytes.Buffer
	c := NewNewcWriter(&buf)
	c.Add(NewcEntry{Name: "dev", Mode: ModeDir | 0o755})
	c.Add(NewcEntry{Name: "dev/console", Mode: ModeChar | 0o600, RdevMajor: 5, RdevMinor: 1})
	c.Add(NewcEntry{Name: "init", Mode: ModeReg | 0o755, Data: []byte("#!/bin/sh\n")})
	c.Add(NewcEntry{Name: "odd", Mode: ModeReg | 0o644, Data: []byte("12345")})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want := []cpioEntry{
		{Name: "dev", Mode: ModeDir | 0o755},
		{Name: "dev/console", Mode: ModeChar | 0o600, RMaj: 5, RMin: 1},
		{Name: "init", Mode: ModeReg | 0o755, Data: "#!/bin/sh\n"},
		{Name: "odd", Mode: ModeReg | 0o644, Data: "12345"},
	}
	if diff := cmp.Diff(want, readNewc(t, buf.Bytes())); diff != "" {
		t.Errorf("archive (-want +got):\n%s", diff)
	}
	// The first header byte for byte: ino 1, mode 040755, nlink 2,
	// namesize 4 ("dev" and its NUL), then 2 NULs to align 114 to 116.
	wantHdr := "070701" + "00000001" + "000041ed" + "00000000" + "00000000" + "00000002" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "00000000" +
		"00000004" + "00000000" + "dev\x00\x00\x00"
	if got := buf.String()[:len(wantHdr)]; got != wantHdr {
		t.Errorf("first header\n got %q\nwant %q", got, wantHdr)
	}
}

// fakeKernelTree writes a modules directory with a modules.dep shaped like
// Debian's and returns its path.
func fakeKernelTree(t *testing.T, dep, builtin string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"modules.dep": dep, "modules.builtin": builtin} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("ELF "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const debianDep = `kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
`

func TestResolveModules(t *testing.T) {
	tests := []struct {
		name    string
		dep     string
		builtin string
		mods    []string
		want    []string
		wantErr string
	}{
		{
			name: "debian 12",
			dep:  debianDep,
			mods: []string{"virtio_pci", "virtio_net", "virtio_blk", "e1000"},
			want: []string{
				"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
				"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
				"kernel/drivers/virtio/virtio.ko",
				"kernel/drivers/virtio/virtio_ring.ko",
				"kernel/drivers/virtio/virtio_pci.ko",
				"kernel/net/core/failover.ko",
				"kernel/drivers/net/net_failover.ko",
				"kernel/drivers/net/virtio_net.ko",
				"kernel/drivers/block/virtio_blk.ko",
				"kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
			},
		},
		{
			name:    "built in",
			dep:     "kernel/drivers/block/virtio_blk.ko:\n",
			builtin: "kernel/drivers/virtio/virtio_pci.ko\n",
			mods:    []string{"virtio_pci", "virtio_blk"},
			want:    []string{"kernel/drivers/block/virtio_blk.ko"},
		},
		{
			name:    "missing",
			dep:     debianDep,
			mods:    []string{"e1000e"},
			wantErr: "module e1000e not found",
		},
		{
			name:    "compressed",
			dep:     "kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/failover.ko.xz\nkernel/net/core/failover.ko.xz:\n",
			mods:    []string{"virtio_net"},
			wantErr: "is compressed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeKernelTree(t, tt.dep, tt.builtin)
			got, err := ResolveModules(dir, tt.mods)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("load order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildInitramfs(t *testing.T) {
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(debianDep), "\n") {
		files = append(files, strings.Split(line, ":")[0])
	}
	modDir := fakeKernelTree(t, debianDep, "", files...)
	busybox := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(busybox, []byte("static busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	if err := buildInitramfs(&gz, busybox, modDir); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]cpioEntry{}
	var names []string
	for _, e := range readNewc(t, raw) {
		got[e.Name] = e
		names = append(names, e.Name)
	}
	for _, want := range []cpioEntry{
		{Name: "init", Mode: ModeReg | 0o755, Data: initScript},
		{Name: "bin/busybox", Mode: ModeReg | 0o755, Data: "static busybox"},
		{Name: "dev/console", Mode: ModeChar | 0o600, RMaj: 5, RMin: 1},
		{Name: "lib/modules/virtio_net.ko", Mode: ModeReg | 0o644, Data: "ELF kernel/drivers/net/virtio_net.ko"},
		{Name: "etc/modules", Mode: ModeReg | 0o644, Data: "virtio_pci_legacy_dev.ko\nvirtio_pci_modern_dev.ko\n" +
			"virtio.ko\nvirtio_ring.ko\nvirtio_pci.ko\nfailover.ko\nnet_failover.ko\nvirtio_net.ko\nvirtio_blk.ko\ne1000.ko\n"},
	} {
		if diff := cmp.Diff(want, got[want.Name]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", want.Name, diff)
		}
	}
	if _, ok := got["lib/modules/xfs.ko"]; ok {
		t.Error("a module nobody asked for was packed")
	}
	if len(names) != len(got) {
		t.Errorf("duplicate members: %v", names)
	}
}
