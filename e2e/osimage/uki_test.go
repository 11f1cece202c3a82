package osimage

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testPE builds a small PE32+ image like systemd's stub: one .text
// section, SectionAlignment and FileAlignment 0x200, headers of 0x400
// bytes, and a COFF symbol table at the end when withSymbols.
func testPE(headers uint32, withSymbols bool) []byte {
	le := binary.LittleEndian
	b := make([]byte, 0x600)
	copy(b, "MZ")
	le.PutUint32(b[peSigOffset:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	coff := 0x44
	le.PutUint16(b[coff:], machineAMD64)
	le.PutUint16(b[coff+2:], 1)    // sections
	le.PutUint16(b[coff+16:], 240) // optional header
	le.PutUint16(b[coff+18:], 0x206)
	opt := coff + coffHeaderSize
	le.PutUint16(b[opt:], magicPE32Plus)
	le.PutUint32(b[opt+4:], 0x200)    // SizeOfCode
	le.PutUint32(b[opt+16:], 0x1000)  // AddressOfEntryPoint
	le.PutUint32(b[opt+32:], 0x200)   // SectionAlignment
	le.PutUint32(b[opt+36:], 0x200)   // FileAlignment
	le.PutUint32(b[opt+56:], 0x1200)  // SizeOfImage
	le.PutUint32(b[opt+60:], headers) // SizeOfHeaders
	le.PutUint16(b[opt+68:], 10)      // Subsystem: EFI application
	le.PutUint32(b[opt+108:], 16)     // NumberOfRvaAndSizes
	s := b[opt+240:]
	copy(s, ".text")
	le.PutUint32(s[8:], 0x10)        // VirtualSize
	le.PutUint32(s[12:], 0x1000)     // VirtualAddress
	le.PutUint32(s[16:], 0x200)      // SizeOfRawData
	le.PutUint32(s[20:], 0x400)      // PointerToRawData
	le.PutUint32(s[36:], 0x60000020) // code, execute, read
	copy(b[0x400:], bytes.Repeat([]byte{0xc3}, 0x10))
	if withSymbols {
		le.PutUint32(b[coff+8:], 0x600) // PointerToSymbolTable
		le.PutUint32(b[coff+12:], 1)    // NumberOfSymbols
		sym := make([]byte, 18+4)
		copy(sym, "efi_main")
		le.PutUint32(sym[18:], 4) // empty string table
		b = append(b, sym...)
	}
	return b
}

func TestAddSections(t *testing.T) {
	kernel := bytes.Repeat([]byte("K"), 5000)
	initrd := bytes.Repeat([]byte("I"), 700)
	secs := ukiSections("ID=test\n", "console=ttyS0", kernel, initrd)
	out, err := addSections(testPE(0x400, true), secs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("the result is not a PE file: %v", err)
	}
	type section struct {
		Name      string
		Data      string
		VA, VSize uint32
	}
	var got []section
	for _, s := range f.Sections {
		data, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, section{s.Name, string(data[:s.VirtualSize]), s.VirtualAddress, s.VirtualSize})
	}
	want := []section{
		{".text", strings.Repeat("\xc3", 0x10), 0x1000, 0x10},
		// The image ended at 0x1200; new sections start on pages.
		{".osrel", "ID=test\n", 0x2000, 8},
		{".cmdline", "console=ttyS0", 0x3000, 13},
		{".linux", string(kernel), 0x4000, 5000},
		{".initrd", string(initrd), 0x6000, 700},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sections (-want +got):\n%s", diff)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if oh.SizeOfImage != 0x6400 {
		t.Errorf("SizeOfImage = %#x, want 0x6400", oh.SizeOfImage)
	}
	if want := uint32(0x200 + 0x200 + 0x1400 + 0x400); oh.SizeOfInitializedData != want {
		t.Errorf("SizeOfInitializedData = %#x, want %#x", oh.SizeOfInitializedData, want)
	}
	if f.NumberOfSymbols != 0 || f.PointerToSymbolTable != 0 {
		t.Errorf("symbol table kept: %d symbols at %#x", f.NumberOfSymbols, f.PointerToSymbolTable)
	}
	if sum := peChecksum(out, 0x44+coffHeaderSize+64); oh.CheckSum != sum || sum == 0 {
		t.Errorf("CheckSum = %#x, recomputed %#x", oh.CheckSum, sum)
	}
}

func TestAddSectionsRefuses(t *testing.T) {
	secs := ukiSections("ID=test\n", "quiet", []byte("k"), []byte("i"))
	tests := []struct {
		name string
		stub func() []byte
		want string
	}{
		{"not PE", func() []byte { return []byte("#!/bin/sh\necho hello\n") }, "no MZ header"},
		{"truncated", func() []byte { return testPE(0x400, false)[:0x80] }, "not a PE32+ image"},
		{"no room for the headers", func() []byte { return testPE(0x1a0, false) }, "no room"},
		{"headers area in use", func() []byte {
			b := testPE(0x400, false)
			b[0x200] = 1 // inside where the new headers go
			return b
		}, "not free"},
		{"trailing data", func() []byte { return append(testPE(0x400, false), "signature"...) }, "not a symbol table"},
		{"not x86-64", func() []byte {
			b := testPE(0x400, false)
			binary.LittleEndian.PutUint16(b[0x44:], 0xaa64)
			return b
		}, "want x86-64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := addSections(tt.stub(), secs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("addSections() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestPEChecksumStub checks the checksum against the one the stub's
// linker wrote.
func TestPEChecksumStub(t *testing.T) {
	b, err := os.ReadFile(DefaultStub)
	if err != nil {
		t.Skipf("no systemd EFI stub (package systemd-boot-efi): %v", err)
	}
	off := int(binary.LittleEndian.Uint32(b[peSigOffset:])) + 4 + coffHeaderSize + 64
	if got, want := peChecksum(b, off), binary.LittleEndian.Uint32(b[off:]); got != want {
		t.Errorf("peChecksum(stub) = %#x, the stub says %#x", got, want)
	}
}
