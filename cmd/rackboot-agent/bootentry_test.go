package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/imaging"
)

// fakeVars is efiVars in memory; failSet makes writes of a name fail.
type fakeVars struct {
	vars    map[string][]byte
	writes  []string
	failSet string
}

func (f *fakeVars) names() ([]string, error) {
	return slices.Sorted(maps.Keys(f.vars)), nil
}

func (f *fakeVars) get(name string) ([]byte, error) {
	b, ok := f.vars[name]
	if !ok {
		return nil, fmt.Errorf("fake: %s: %w", name, fs.ErrNotExist)
	}
	return b, nil
}

func (f *fakeVars) set(name string, value []byte) error {
	if name == f.failSet {
		return errors.New("fake: invalid argument")
	}
	f.vars[name] = bytes.Clone(value)
	f.writes = append(f.writes, name)
	return nil
}

// order returns BootOrder and BootNext, "" when unset.
func (f *fakeVars) order(t *testing.T) (string, string) {
	t.Helper()
	o, err := parseBootOrder(f.vars["BootOrder"])
	if err != nil {
		t.Fatal(err)
	}
	next := ""
	if b, ok := f.vars["BootNext"]; ok {
		n, err := parseBootOrder(b)
		if err != nil || len(n) != 1 {
			t.Fatalf("BootNext %x", b)
		}
		next = bootName(n[0])
	}
	return formatOrder(o), next
}

func TestSetDiskBoot(t *testing.T) {
	ovmf := readOVMFVars(t)
	want := diskBoot{Description: "rackboot demo-1.0", ESP: testESP, Loader: `\EFI\BOOT\BOOTX64.EFI`}
	other := testESP
	other.GUID[0]++ // the ESP of another image
	option := func(desc string, hd hardDrive, file string) []byte {
		return loadOption{Attributes: loadOptionActive, Description: desc, FilePath: diskPath(hd, file)}.marshal()
	}
	for _, tt := range []struct {
		name    string
		setup   func(v map[string][]byte)
		failSet string // a variable the firmware refuses
		// results
		entry   string
		written bool
		order   string
		writes  []string
		err     string
	}{
		{
			name:    "first install after OVMF's PXE boot",
			entry:   "Boot0006",
			written: true,
			order:   "0001,0006,0002,0003,0004,0000,0005",
			writes:  []string{"Boot0006", "BootOrder", "BootNext"},
		},
		{
			name: "the same image again: the entry is reused untouched",
			setup: func(v map[string][]byte) {
				v["Boot0006"] = option("rackboot demo-1.0", testESP, `\EFI\BOOT\BOOTX64.EFI`)
				v["BootOrder"] = marshalUint16s(1, 2, 3, 4, 6, 0, 5) // as OVMF reorders it
			},
			entry:  "Boot0006",
			order:  "0001,0006,0002,0003,0004,0000,0005",
			writes: []string{"BootOrder", "BootNext"},
		},
		{
			name: "another image: rackboot's old entry is taken over",
			setup: func(v map[string][]byte) {
				v["Boot0006"] = option("rackboot demo-0.9", other, `\EFI\BOOT\BOOTX64.EFI`)
				v["BootOrder"] = marshalUint16s(1, 6, 2, 3, 4, 0, 5)
			},
			entry:   "Boot0006",
			written: true,
			order:   "0001,0006,0002,0003,0004,0000,0005",
			writes:  []string{"Boot0006", "BootNext"},
		},
		{
			name: "the OS's own entry for the loader is kept as it is",
			setup: func(v map[string][]byte) {
				v["Boot0009"] = option("debian", testESP, `\efi\boot\bootx64.efi`)
			},
			entry:  "Boot0009",
			order:  "0001,0009,0002,0003,0004,0000,0005",
			writes: []string{"BootOrder", "BootNext"},
		},
		{
			name: "an entry for another loader on the ESP is not reused",
			setup: func(v map[string][]byte) {
				v["Boot0006"] = option("debian", testESP, `\EFI\debian\shimx64.efi`)
			},
			entry:   "Boot0007",
			written: true,
			order:   "0001,0007,0002,0003,0004,0000,0005",
			writes:  []string{"Boot0007", "BootOrder", "BootNext"},
		},
		{
			name:    "no BootOrder, no BootCurrent",
			setup:   func(v map[string][]byte) { delete(v, "BootOrder"); delete(v, "BootCurrent") },
			entry:   "Boot0006",
			written: true,
			order:   "0006",
			writes:  []string{"Boot0006", "BootOrder", "BootNext"},
		},
		{
			name: "an option that does not parse is neither used nor counted free",
			setup: func(v map[string][]byte) {
				v["Boot0006"] = []byte{1, 0, 0, 0}
			},
			entry:   "Boot0007",
			written: true,
			order:   "0001,0007,0002,0003,0004,0000,0005",
			writes:  []string{"Boot0007", "BootOrder", "BootNext"},
		},
		{
			name:  "BootOrder of odd length",
			setup: func(v map[string][]byte) { v["BootOrder"] = []byte{1, 0, 2} },
			err:   "BootOrder of 3 bytes",
		},
		{
			name:    "the firmware refuses the entry",
			failSet: "Boot0006",
			err:     "writing Boot0006: fake: invalid argument",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVars{vars: maps.Clone(ovmf)}
			if tt.setup != nil {
				tt.setup(v.vars)
			}
			v.failSet = tt.failSet
			before := maps.Clone(v.vars)
			ch, err := setDiskBoot(v, want)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				if len(v.writes) > 0 {
					t.Errorf("variables written before the error: %v", v.writes)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			order, next := v.order(t)
			if bootName(ch.Entry) != tt.entry || ch.Written != tt.written || formatOrder(ch.Order) != tt.order {
				t.Errorf("change %s written %v order %s, want %s %v %s", bootName(ch.Entry), ch.Written, formatOrder(ch.Order),
					tt.entry, tt.written, tt.order)
			}
			if order != tt.order || next != tt.entry {
				t.Errorf("BootOrder %s BootNext %s, want %s %s", order, next, tt.order, tt.entry)
			}
			if diff := cmp.Diff(tt.writes, v.writes); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			o, err := parseLoadOption(v.vars[tt.entry])
			if err != nil {
				t.Fatal(err)
			}
			if !bootsLoader(o.FilePath, testESP, want.Loader) || o.Attributes&loadOptionActive == 0 {
				t.Errorf("%s = %+v: not an active option booting the loader", tt.entry, o)
			}
			// Everything else is as it was.
			for name, b := range before {
				if name != tt.entry && name != "BootOrder" && !bytes.Equal(v.vars[name], b) {
					t.Errorf("%s changed", name)
				}
			}
		})
	}
}

func TestInstalledBoot(t *testing.T) {
	res := &imaging.Result{SectorSize: 512, Partitions: []imaging.PartitionInfo{
		{Index: 1, Name: "esp", Type: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", GUID: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", Start: 1 << 20, Size: 64 << 20},
		{Index: 2, Name: "root", Type: string(gpt.LinuxRootX86_64), GUID: "11111111-2222-3333-4444-555555555555", Start: 65 << 20, Size: 16 << 20},
	}}
	got, err := installedBoot(res, "demo-1.0")
	if err != nil {
		t.Fatal(err)
	}
	want := diskBoot{Description: "rackboot demo-1.0", ESP: testESP, Loader: removableLoader()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// 4Kn disks count blocks of 4096 bytes.
	res.SectorSize = 4096
	if got, _ := installedBoot(res, "demo-1.0"); got.ESP.Start != 256 || got.ESP.Size != 16384 {
		t.Errorf("4Kn: start %d size %d, want 256 and 16384", got.ESP.Start, got.ESP.Size)
	}
	res.Partitions = res.Partitions[1:]
	if _, err := installedBoot(res, "demo-1.0"); err == nil {
		t.Error("no ESP, no error")
	}
}

// TestAttemptSetsBootEntry installs an image with an ESP on a UEFI
// machine: the agent makes the boot entry for the partition it wrote,
// and logs it.
func TestAttemptSetsBootEntry(t *testing.T) {
	img := newESPImage(t)
	plan := func(base string) (int, string) { return planJSON(testPlan(base+"/artifacts/os.img.zst", img.sha256)) }
	fa := newFakeAppliance(t, img, plan)
	disk, disks := newTarget(t, targetSize)
	a, screen := testAgent(t, fa.url, "52:54:00:00:01:01", testToken, disks)
	v := &fakeVars{vars: readOVMFVars(t)}
	a.efi = v
	out, err := a.attempt(context.Background())
	if err != nil || !out.Done {
		t.Fatalf("attempt: %+v, %v\n%s", out, err, screen)
	}
	order, next := v.order(t)
	if next != "Boot0006" || order != "0001,0006,0002,0003,0004,0000,0005" {
		t.Errorf("BootNext %s BootOrder %s", next, order)
	}
	o, err := parseLoadOption(v.vars["Boot0006"])
	if err != nil {
		t.Fatal(err)
	}
	nodes, _ := parseDevicePath(o.FilePath)
	hd, ok := parseHardDrive(nodes[0])
	g, _ := efiGUID(espGUID)
	if !ok || hd != (hardDrive{Partition: 1, Start: 2048, Size: 4 * mib / 512, GUID: g}) {
		t.Errorf("entry's partition %+v, want the image's ESP", hd)
	}
	if l := fa.body("log"); !strings.Contains(l, `msg=\"UEFI boot entry set\"`) || !strings.Contains(l, "entry=Boot0006") {
		t.Errorf("the log sent lacks the boot entry: %s", fa.body("log"))
	}
	checkInstalled(t, disk, img)
}

// espGUID is the partition GUID of newESPImage's ESP.
const espGUID = "6A2E1D3C-5B4F-4E8A-9C7D-0123456789AB"

// newESPImage is newTestImage with a 4 MiB ESP before the root partition.
func newESPImage(t *testing.T) testImage {
	t.Helper()
	p := filepath.Join(t.TempDir(), "os.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(imageSize)
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Name: "esp", Type: gpt.EFISystemPartition, GUID: espGUID, Start: 2048, End: 2048 + 4*mib/512 - 1},
		{Index: 2, Name: "root", Type: gpt.LinuxRootX86_64, Start: 2048 + 4*mib/512, End: (imageSize-mib)/512 - 1},
	}}
	if err := tbl.Write(f, imageSize); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, imageSize-2*mib)
	for i := range body {
		body[i] = byte(i/4096) ^ byte(i)
	}
	f.WriteAt(body, mib)
	f.Close()
	return compressedImage(t, p)
}
