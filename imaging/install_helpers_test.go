package imaging

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/rackboot/rackboot/agentapi"
)

// readTable reads the GPT of an image file the way a fresh reader would.
func readTable(t *testing.T, p string, ss int) *gpt.Table {
	t.Helper()
	b, err := file.OpenFromPath(p, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tbl, err := gpt.Read(b, ss, ss)
	if err != nil {
		t.Fatalf("read GPT of %s: %v", p, err)
	}
	if tbl.RecoveredFromBackup {
		t.Errorf("%s: primary GPT damaged, read from backup", p)
	}
	fi, _ := os.Stat(p)
	if err := tbl.Verify(b, uint64(fi.Size())); err != nil {
		t.Errorf("%s: go-diskfs Verify: %v", p, err)
	}
	return tbl
}

// layoutDump is the golden form of a partition table: everything but the
// random GUIDs.
type layoutDump struct {
	SectorSize    int             `json:"sector_size"`
	DiskSize      int64           `json:"disk_size"`
	ProtectiveMBR bool            `json:"protective_mbr"`
	LastUsable    uint64          `json:"last_usable_lba"`
	Partitions    []partitionDump `json:"partitions"`
}

type partitionDump struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Type  string `json:"type"`
	First uint64 `json:"first_lba"`
	Last  uint64 `json:"last_lba"`
	Size  string `json:"size"`
}

func dumpLayout(t *testing.T, p string, ss int) []byte {
	t.Helper()
	tbl := readTable(t, p, ss)
	fi, _ := os.Stat(p)
	d := layoutDump{SectorSize: ss, DiskSize: fi.Size(), ProtectiveMBR: protectiveMBR(t, p, uint64(fi.Size())/uint64(ss)), LastUsable: tbl.LastDataSector()}
	for _, part := range tbl.Partitions {
		d.Partitions = append(d.Partitions, partitionDump{
			Index: part.Index, Name: part.Name, Type: string(part.Type),
			First: part.Start, Last: part.End, Size: agentapi.Size(part.GetSize()).String(),
		})
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// protectiveMBR checks LBA 0 against UEFI spec 2.10, 5.2.3 (go-diskfs
// cannot: it looks for the signature at the end of a 4 KiB sector).
func protectiveMBR(t *testing.T, p string, sectors uint64) bool {
	t.Helper()
	mbr := readRange(t, p, 0, 512)
	e := mbr[446:462]
	ok := mbr[510] == 0x55 && mbr[511] == 0xAA && e[4] == 0xEE &&
		binary.LittleEndian.Uint32(e[8:]) == 1 &&
		binary.LittleEndian.Uint32(e[12:]) == uint32(min(sectors-1, 0xFFFFFFFF)) &&
		bytes.Equal(mbr[462:510], make([]byte, 48))
	if !ok {
		t.Errorf("%s: no valid protective MBR: % x", p, mbr[446:])
	}
	return ok
}

// partitionByName returns a partition of the image file's table.
func partitionByName(t *testing.T, p string, ss int, name string) *gpt.Partition {
	t.Helper()
	for _, part := range readTable(t, p, ss).Partitions {
		if part.Name == name {
			return part
		}
	}
	t.Fatalf("%s: no partition %q", p, name)
	return nil
}

// extract copies n bytes at off of file p into a new sparse file.
func extract(t *testing.T, p string, off, n int64) string {
	t.Helper()
	src, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "part.img")
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for done := int64(0); done < n; {
		c := min(int64(len(buf)), n-done)
		if _, err := src.ReadAt(buf[:c], off+done); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:c], zero[:c]) {
			if _, err := dst.WriteAt(buf[:c], done); err != nil {
				t.Fatal(err)
			}
		}
		done += c
	}
	if err := dst.Truncate(n); err != nil {
		t.Fatal(err)
	}
	return out
}

// fsckVfat runs fsck.vfat -n on a partition of p; exit status 0 means no
// errors (warnings such as an uninitialised free cluster count are printed
// but do not fail it).
func fsckVfat(t *testing.T, p string, part *gpt.Partition) {
	t.Helper()
	fsckVfatAt(t, p, part.Name, part.GetStart(), part.GetSize())
}

func fsckVfatAt(t *testing.T, p, name string, start, size int64) {
	t.Helper()
	fsck := needTool(t, "fsck.vfat")
	img := extract(t, p, start, size)
	out, err := exec.Command(fsck, "-n", img).CombinedOutput()
	t.Logf("fsck.vfat -n %s:\n%s", name, out)
	if err != nil {
		t.Errorf("fsck.vfat -n on %q: %v\n%s", name, err, out)
	}
}

// fatFiles reads every file of the FAT32 file system in a partition of p.
func fatFiles(t *testing.T, p string, ss int, part *gpt.Partition) (label string, files map[string][]byte) {
	t.Helper()
	return fatFilesAt(t, p, ss, part.GetStart(), part.GetSize())
}

func fatFilesAt(t *testing.T, p string, ss int, start, size int64) (label string, files map[string][]byte) {
	t.Helper()
	b, err := file.OpenFromPath(p, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fs, err := fat32.Read(b, size, start, int64(ss))
	if err != nil {
		t.Fatalf("FAT32 at %d: %v", start, err)
	}
	files = map[string][]byte{}
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := fs.ReadDir(dir)
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			if dir != "." {
				name = dir + "/" + name
			}
			if e.IsDir() {
				if e.Name() != "." && e.Name() != ".." {
					walk(name)
				}
				continue
			}
			b, err := fs.ReadFile(name)
			if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			files[name] = b
		}
	}
	walk(".")
	return strings.TrimSpace(fs.Label()), files
}

// sgdiskVerify runs sgdisk -v on a 512-byte-sector image (sgdisk reads
// image files as 512-byte sectors only).
func sgdiskVerify(t *testing.T, p string) {
	t.Helper()
	sgdisk := needTool(t, "sgdisk")
	out, err := exec.Command(sgdisk, "-v", p).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("No problems found")) {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
}

// osImage builds a whole-disk OS image of size bytes: a GPT with a 4 MiB
// "boot" partition and a "root" partition filling the image, each filled
// with a pattern distinct per version.
func osImage(t *testing.T, ss int, size int64, version byte) []byte {
	t.Helper()
	p := newDisk(t, size)
	b, err := file.OpenFromPath(p, false)
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGeometry(size, ss)
	if err != nil {
		t.Fatal(err)
	}
	a := g.align()
	tbl := &gpt.Table{LogicalSectorSize: ss, PhysicalSectorSize: ss, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Name: "boot", Type: gpt.LinuxExtendedBoot, Start: a, End: 5*a - 1},
		{Index: 2, Name: "root", Type: gpt.LinuxRootX86_64, Start: 5 * a, End: g.last},
	}}
	w, _ := b.Writable()
	if err := tbl.Write(w, size); err != nil {
		t.Fatal(err)
	}
	for _, part := range tbl.Partitions {
		n := int64(part.End-part.Start+1) * int64(ss)
		if _, err := w.WriteAt(pattern(int(n), version), int64(part.Start)*int64(ss)); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	img, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// serveFile serves a file over HTTP for the installer.
func serveFile(t *testing.T, file []byte) (*httptest.Server, *imageServer) {
	srv := &imageServer{t: t, file: file}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, srv
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
