package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readOVMFVars reads testdata/ovmf-vars.txt: OVMF's variables after a PXE
// boot, NAME HEX per line.
func readOVMFVars(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/ovmf-vars.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string][]byte{}
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, h, ok := strings.Cut(line, " ")
		b, err := hex.DecodeString(h)
		if !ok || err != nil {
			t.Fatalf("testdata/ovmf-vars.txt: bad line %q", line)
		}
		vars[name] = b
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return vars
}

// unhex decodes hex written one field per line, each line's comment
// after "//", spaces anywhere.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var digits strings.Builder
	for line := range strings.Lines(s) {
		line, _, _ = strings.Cut(line, "//")
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The partition of the known-answer tests: the ESP of a GPT disk, 64 MiB
// from LBA 2048.
var testESP = hardDrive{
	Partition: 1, Start: 2048, Size: 131072,
	// 0FC63DAF-8483-4772-8E79-3D69D8477DE4 in EFI_GUID byte order.
	GUID: [16]byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4},
}

// TestLoadOptionKnownAnswer checks the entry for an installed disk byte
// by byte against the layouts of UEFI 2.10 sections 3.1.3, 10.3.5.1 and
// 10.3.5.4, written out field by field here.
func TestLoadOptionKnownAnswer(t *testing.T) {
	want := unhex(t, `
		01000000                          // Attributes: LOAD_OPTION_ACTIVE
		5e00                              // FilePathListLength: 42 + 48 + 4
		7200 6100 6300 6b00 6200 6f00 6f00 7400 2000  // Description: "rackboot "
		6400 6500 6d00 6f00 2d00 3100 2e00 3000 0000  // "demo-1.0", NUL
		04 01 2a00                        // HD(): media, hard drive, 42 bytes
		01000000                          // partition number 1
		0008000000000000                  // start LBA 2048
		0000020000000000                  // size 131072 blocks
		af3dc60f 8384 7247 8e793d69d8477de4  // GUID 0FC63DAF-8483-4772-8E79-3D69D8477DE4
		02 02                             // GPT, GUID signature
		04 04 3000                        // File(): media, file path, 48 bytes
		5c00 4500 4600 4900 5c00          // \EFI\
		4200 4f00 4f00 5400 5c00          // BOOT\
		4200 4f00 4f00 5400 5800 3600 3400  // BOOTX64
		2e00 4500 4600 4900 0000          // .EFI, NUL
		7f ff 0400                        // End of the entire device path`)
	got := loadOption{Attributes: loadOptionActive, Description: "rackboot demo-1.0", FilePath: diskPath(testESP, `\EFI\BOOT\BOOTX64.EFI`)}.marshal()
	if !bytes.Equal(got, want) {
		t.Errorf("load option\n got %x\nwant %x", got, want)
	}
	o, err := parseLoadOption(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bootsLoader(o.FilePath, testESP, `\efi\boot\bootx64.efi`) {
		t.Error("bootsLoader does not recognise the entry it made (file names compare without case)")
	}
	if isNetwork(o.FilePath) {
		t.Error("a disk entry counts as a network entry")
	}
}

// TestParseOVMFOptions decodes the options OVMF made itself and encodes
// them back to the same bytes.
func TestParseOVMFOptions(t *testing.T) {
	vars := readOVMFVars(t)
	want := map[string]struct {
		desc    string
		active  bool
		network bool
		auto    bool // created by EDK2's boot option enumeration
	}{
		"Boot0000": {"UiApp", true, false, false},
		"Boot0001": {"UEFI PXEv4 (MAC:525400770102)", true, true, true},
		"Boot0002": {"UEFI PXEv6 (MAC:525400770102)", true, true, true},
		"Boot0003": {"UEFI HTTPv4 (MAC:525400770102)", true, true, true},
		"Boot0004": {"UEFI HTTPv6 (MAC:525400770102)", true, true, true},
		"Boot0005": {"EFI Internal Shell", true, false, false},
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			o, err := parseLoadOption(vars[name])
			if err != nil {
				t.Fatal(err)
			}
			if o.Description != w.desc || (o.Attributes&loadOptionActive != 0) != w.active || isNetwork(o.FilePath) != w.network {
				t.Errorf("%q active %v network %v, want %q %v %v", o.Description, o.Attributes&loadOptionActive != 0,
					isNetwork(o.FilePath), w.desc, w.active, w.network)
			}
			if auto := len(o.OptionalData) == 16; auto != w.auto {
				t.Errorf("optional data %x; want EDK2's GUID of auto-created options: %v", o.OptionalData, w.auto)
			}
			if got := o.marshal(); !bytes.Equal(got, vars[name]) {
				t.Errorf("encoded again:\n got %x\nwant %x", got, vars[name])
			}
		})
	}
	order, err := parseBootOrder(vars["BootOrder"])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint16{1, 2, 3, 4, 0, 5}, order); diff != "" {
		t.Errorf("BootOrder (-want +got):\n%s", diff)
	}
}

func TestParseLoadOptionErrors(t *testing.T) {
	valid := loadOption{Attributes: 1, Description: "x", FilePath: diskPath(testESP, `\a.efi`)}.marshal()
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"header only", valid[:6]},
		{"description without NUL", valid[:9]},
		{"path longer than the data", valid[:len(valid)-1]},
		{"node shorter than its header", append(append([]byte{1, 0, 0, 0, 4, 0}, 0, 0), 4, 1, 2, 0)},
		{"node longer than the path", append(append([]byte{1, 0, 0, 0, 4, 0}, 0, 0), 4, 1, 42, 0)},
		{"no End node", append(append([]byte{1, 0, 0, 0, 4, 0}, 0, 0), 4, 4, 4, 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if o, err := parseLoadOption(tt.b); err == nil {
				t.Errorf("parsed %x as %+v", tt.b, o)
			}
		})
	}
}

func TestEFIGUID(t *testing.T) {
	g, err := efiGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	if err != nil || g != testESP.GUID {
		t.Errorf("efiGUID = %x, %v; want %x", g, err, testESP.GUID)
	}
	if g2, _ := efiGUID("0fc63daf-8483-4772-8e79-3d69d8477de4"); g2 != g {
		t.Errorf("lower case: %x", g2)
	}
	for _, bad := range []string{"", "0FC63DAF84834772 8E793D69D8477DE4", "0FC63DAF-8483-4772-8E79-3D69D8477DE", "0FC63DAF-8483-4772-8E793-D69D8477DE4", "0FC63DAF-8483-4772-8E79-3D69D8477DEZ"} {
		if _, err := efiGUID(bad); err == nil {
			t.Errorf("efiGUID(%q) accepted", bad)
		}
	}
}

func TestBootName(t *testing.T) {
	for _, n := range []uint16{0, 1, 0x0a, 0xbeef, 0xffff} {
		if got, ok := parseBootName(bootName(n)); !ok || got != n {
			t.Errorf("parseBootName(%q) = %d, %v", bootName(n), got, ok)
		}
	}
	for _, bad := range []string{"BootOrder", "BootNext", "Boot000", "Boot00000", "Boot000g", "Boot000a", "boot0001", "Timeout"} {
		if n, ok := parseBootName(bad); ok {
			t.Errorf("parseBootName(%q) = %d", bad, n)
		}
	}
	if got := formatOrder([]uint16{1, 6, 0xab}); got != "0001,0006,00AB" {
		t.Errorf("formatOrder = %q", got)
	}
}

func TestPlaceEntry(t *testing.T) {
	// 1-4 are network entries, 5 and up are not.
	network := func(n uint16) bool { return n >= 1 && n <= 4 }
	for _, tt := range []struct {
		name       string
		order      []uint16
		current    uint16
		hasCurrent bool
		want       []uint16
	}{
		{"after the entry that booted", []uint16{1, 2, 3, 4, 0, 5}, 1, true, []uint16{1, 6, 2, 3, 4, 0, 5}},
		{"after the second NIC that booted", []uint16{1, 2, 3, 4, 0}, 3, true, []uint16{1, 2, 3, 6, 4, 0}},
		{"moved from the front", []uint16{6, 1, 2, 0}, 1, true, []uint16{1, 6, 2, 0}},
		{"already in place", []uint16{1, 6, 2}, 1, true, []uint16{1, 6, 2}},
		{"no BootCurrent: after the leading network entries", []uint16{1, 2, 0, 3}, 0, false, []uint16{1, 2, 6, 0, 3}},
		{"booted from a disk: after the leading network entries", []uint16{2, 5, 1}, 5, true, []uint16{2, 6, 5, 1}},
		{"booted by a one-time choice outside BootOrder", []uint16{1, 2, 0}, 3, true, []uint16{1, 2, 6, 0}},
		{"no network entry first: the disk first", []uint16{0, 1, 5}, 0, false, []uint16{6, 0, 1, 5}},
		{"empty BootOrder", nil, 1, true, []uint16{6}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]uint16(nil), tt.order...)
			got := placeEntry(tt.order, 6, tt.current, tt.hasCurrent, network)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(in, tt.order); diff != "" {
				t.Errorf("the input changed (-before +after):\n%s", diff)
			}
		})
	}
}

func FuzzParseLoadOption(f *testing.F) {
	for _, b := range readOVMFVars(f) {
		f.Add(b)
	}
	f.Add(loadOption{Attributes: 1, Description: "rackboot x", FilePath: diskPath(testESP, `\EFI\BOOT\BOOTX64.EFI`)}.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseLoadOption(b)
		if err != nil {
			return
		}
		isNetwork(o.FilePath)
		bootsLoader(o.FilePath, testESP, `\EFI\BOOT\BOOTX64.EFI`)
		// What parses encodes to something that parses the same way.
		again, err := parseLoadOption(o.marshal())
		if err != nil {
			t.Fatalf("re-encoded option does not parse: %v", err)
		}
		if diff := cmp.Diff(o, again); diff != "" {
			t.Errorf("re-encoded option differs (-first +second):\n%s", diff)
		}
	})
}
