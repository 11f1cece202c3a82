package osimage

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// peSection is a section to add to a PE image.
type peSection struct {
	name string // at most 8 bytes
	data []byte
}

// PE/COFF layout (Microsoft PE format specification).
const (
	peSigOffset    = 0x3c // e_lfanew in the MS-DOS header
	coffHeaderSize = 20
	sectionSize    = 40
	magicPE32Plus  = 0x20b
	machineAMD64   = 0x8664
	// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ: what ukify
	// and objcopy give the sections the stub reads.
	dataSection = 0x40000040
)

// ukiSections are the sections systemd-stub reads from its own image
// (systemd 252, src/boot/efi/stub.c): os-release, the kernel command line,
// the kernel and the initramfs.
func ukiSections(osrel, cmdline string, kernel, initrd []byte) []peSection {
	return []peSection{
		{".osrel", []byte(osrel)},
		{".cmdline", []byte(cmdline)},
		{".linux", kernel},
		{".initrd", initrd},
	}
}

// addSections returns stub, a PE32+ image such as systemd's
// linuxx64.efi.stub, with the sections appended: what `objcopy
// --add-section NAME=FILE --change-section-vma NAME=ADDR` does in
// systemd's documentation, and ukify since systemd 253 (Debian 12 has no
// ukify).
//
// The new section headers go into the slack between the section table and
// the first section's data, which must be zeros. Each section is placed
// after the image's last one, page-aligned in memory and FileAlignment-
// aligned in the file. A COFF symbol table at the end of the file (the
// stub carries one; firmware never reads it, and the PE specification
// deprecates it in images) is dropped, as strip would. The checksum is
// recomputed.
func addSections(stub []byte, sections []peSection) ([]byte, error) {
	if len(stub) < peSigOffset+4 || string(stub[:2]) != "MZ" {
		return nil, errors.New("osimage: stub: not a PE image (no MZ header)")
	}
	le := binary.LittleEndian
	pe := int(le.Uint32(stub[peSigOffset:]))
	if pe+4+coffHeaderSize > len(stub) || string(stub[pe:pe+4]) != "PE\x00\x00" {
		return nil, errors.New("osimage: stub: no PE signature")
	}
	coff := pe + 4
	if m := le.Uint16(stub[coff:]); m != machineAMD64 {
		return nil, fmt.Errorf("osimage: stub: machine %#x, want x86-64", m)
	}
	nsec := int(le.Uint16(stub[coff+2:]))
	symtab := int(le.Uint32(stub[coff+8:]))
	opt := coff + coffHeaderSize
	optSize := int(le.Uint16(stub[coff+16:]))
	if opt+optSize > len(stub) || optSize < 112 || le.Uint16(stub[opt:]) != magicPE32Plus {
		return nil, errors.New("osimage: stub: not a PE32+ image")
	}
	sectAlign := le.Uint32(stub[opt+32:])
	fileAlign := le.Uint32(stub[opt+36:])
	sizeOfImage := le.Uint32(stub[opt+56:])
	sizeOfHeaders := int(le.Uint32(stub[opt+60:]))
	if sectAlign == 0 || fileAlign == 0 {
		return nil, errors.New("osimage: stub: zero alignment")
	}
	table := opt + optSize
	if table+nsec*sectionSize > len(stub) {
		return nil, errors.New("osimage: stub: truncated section table")
	}

	// Where the existing sections are, in memory and in the file.
	firstRaw, rawEnd := len(stub), 0
	var vaEnd uint32
	for i := range nsec {
		s := stub[table+i*sectionSize:]
		vsize, va := le.Uint32(s[8:]), le.Uint32(s[12:])
		rsize, raw := int(le.Uint32(s[16:])), int(le.Uint32(s[20:]))
		vaEnd = max(vaEnd, va+max(vsize, uint32(rsize)))
		if rsize > 0 {
			firstRaw = min(firstRaw, raw)
			rawEnd = max(rawEnd, raw+rsize)
		}
	}
	if rawEnd > len(stub) {
		return nil, errors.New("osimage: stub: a section reaches past the end of the file")
	}
	newTable := table + nsec*sectionSize
	tableEnd := newTable + len(sections)*sectionSize
	if tableEnd > min(sizeOfHeaders, firstRaw) {
		return nil, fmt.Errorf("osimage: stub: no room for %d more section headers", len(sections))
	}
	for _, b := range stub[newTable:tableEnd] {
		if b != 0 {
			return nil, errors.New("osimage: stub: the space after the section table is not free")
		}
	}
	if rawEnd < len(stub) && (symtab == 0 || symtab < rawEnd) {
		return nil, fmt.Errorf("osimage: stub: %d bytes after the last section that are not a symbol table", len(stub)-rawEnd)
	}

	page := max(sectAlign, 4096)
	out := make([]byte, rawEnd, rawEnd+totalSize(sections, int(fileAlign)))
	copy(out, stub)
	le.PutUint32(out[coff+8:], 0)  // PointerToSymbolTable
	le.PutUint32(out[coff+12:], 0) // NumberOfSymbols
	va := alignUp32(max(vaEnd, sizeOfImage), page)
	end := va
	initData := le.Uint32(out[opt+8:])
	for i, sec := range sections {
		if len(sec.name) > 8 {
			return nil, fmt.Errorf("osimage: section name %q is longer than 8 bytes", sec.name)
		}
		raw := len(out)
		rsize := alignUp(len(sec.data), int(fileAlign))
		h := out[newTable+i*sectionSize:]
		copy(h[0:8], sec.name)
		le.PutUint32(h[8:], uint32(len(sec.data))) // VirtualSize
		le.PutUint32(h[12:], va)                   // VirtualAddress
		le.PutUint32(h[16:], uint32(rsize))        // SizeOfRawData
		le.PutUint32(h[20:], uint32(raw))          // PointerToRawData
		le.PutUint32(h[36:], dataSection)          // Characteristics
		out = append(out, sec.data...)
		out = append(out, make([]byte, rsize-len(sec.data))...)
		initData += uint32(rsize)
		end = va + uint32(len(sec.data))
		va = alignUp32(end, page)
	}
	le.PutUint16(out[coff+2:], uint16(nsec+len(sections)))
	le.PutUint32(out[opt+8:], initData)                   // SizeOfInitializedData
	le.PutUint32(out[opt+56:], alignUp32(end, sectAlign)) // SizeOfImage
	le.PutUint32(out[opt+64:], 0)
	le.PutUint32(out[opt+64:], peChecksum(out, opt+64))
	return out, nil
}

func totalSize(sections []peSection, align int) int {
	n := 0
	for _, s := range sections {
		n += alignUp(len(s.data), align)
	}
	return n
}

func alignUp(v, a int) int         { return (v + a - 1) / a * a }
func alignUp32(v, a uint32) uint32 { return (v + a - 1) / a * a }

// peChecksum is the PE image checksum (the algorithm of IMAGEHLP's
// CheckSumMappedFile): the ones'-complement-style sum of the file's
// 16-bit little-endian words, skipping the checksum field at off, folded
// to 16 bits, plus the file length. UEFI firmware does not check it; tools
// such as sbverify and pesign do.
func peChecksum(b []byte, off int) uint32 {
	var sum uint64
	for i := 0; i < len(b); i += 2 {
		if i == off || i == off+2 {
			continue
		}
		w := uint64(b[i])
		if i+1 < len(b) {
			w |= uint64(b[i+1]) << 8
		}
		sum += w
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}
