package main

// The UEFI boot manager's data, as the firmware stores it in variables:
// load options (Boot####) and the device paths inside them. Only what the
// agent needs to point the firmware at the installed disk is decoded.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// Attributes of a load option (UEFI 2.10 section 3.1.3, EFI_LOAD_OPTION).
const (
	// loadOptionActive: the boot manager tries the option when it walks
	// BootOrder. An inactive option is skipped, and OVMF's QEMU boot
	// order code does not keep it.
	loadOptionActive = 0x00000001
)

// Device path node types and subtypes (UEFI 2.10 section 10.3).
const (
	dpMessaging = 0x03
	dpMedia     = 0x04
	dpEnd       = 0x7f

	dpMsgMAC  = 11 // MAC(): the NIC a network boot uses (10.3.4.11)
	dpMsgIPv4 = 12 // IPv4(): PXE or HTTP boot over IPv4 (10.3.4.12)
	dpMsgIPv6 = 13 // IPv6() (10.3.4.13)
	dpMsgURI  = 24 // Uri(): HTTP boot (10.3.4.23)

	dpMediaHardDrive = 1 // HD(): a partition (10.3.5.1)
	dpMediaFilePath  = 4 // File(): a path on the partition's file system (10.3.5.4)

	dpEndEntire = 0xff // ends the device path
)

// Fields of the HD() node for a GPT partition (UEFI 2.10 section 10.3.5.1).
const (
	hdLength         = 42
	hdFormatGPT      = 0x02 // PartitionFormat: GUID Partition Table
	hdSignatureGUID  = 0x02 // SignatureType: the partition's unique GUID
	devicePathEndLen = 4
)

// espTypeGUID is the partition type of an EFI System Partition (UEFI
// 2.10 table 5.7).
const espTypeGUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

// loadOption is an EFI_LOAD_OPTION, the value of a Boot#### variable:
//
//	UINT32 Attributes
//	UINT16 FilePathListLength
//	CHAR16 Description[]      NUL-terminated UTF-16LE
//	EFI_DEVICE_PATH FilePathList[FilePathListLength bytes]
//	UINT8  OptionalData[]     the rest
type loadOption struct {
	Attributes  uint32
	Description string
	// FilePath is the device path list, encoded, End node included. Its
	// first instance is what the boot manager boots.
	FilePath []byte
	// OptionalData is passed to the loaded image. EDK2 puts a GUID there
	// to mark the options it creates itself on every boot.
	OptionalData []byte
}

func (o loadOption) marshal() []byte {
	desc := utf16z(o.Description)
	b := make([]byte, 0, 6+len(desc)+len(o.FilePath)+len(o.OptionalData))
	b = binary.LittleEndian.AppendUint32(b, o.Attributes)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(o.FilePath)))
	b = append(b, desc...)
	b = append(b, o.FilePath...)
	return append(b, o.OptionalData...)
}

// parseLoadOption decodes a Boot#### value. The firmware and whatever
// else wrote the variable (an OS installer, efibootmgr) are trusted no
// further than to give bytes: lengths are checked against the data.
func parseLoadOption(b []byte) (loadOption, error) {
	if len(b) < 6 {
		return loadOption{}, fmt.Errorf("load option of %d bytes: too short", len(b))
	}
	o := loadOption{Attributes: binary.LittleEndian.Uint32(b)}
	pathLen := int(binary.LittleEndian.Uint16(b[4:]))
	desc, n, err := parseUTF16z(b[6:])
	if err != nil {
		return loadOption{}, fmt.Errorf("load option description: %w", err)
	}
	o.Description = desc
	rest := b[6+n:]
	if pathLen > len(rest) {
		return loadOption{}, fmt.Errorf("load option: device path of %d bytes, %d left", pathLen, len(rest))
	}
	o.FilePath = rest[:pathLen]
	if _, err := parseDevicePath(o.FilePath); err != nil {
		return loadOption{}, err
	}
	if len(rest) > pathLen {
		o.OptionalData = rest[pathLen:]
	}
	return o, nil
}

// dpNode is one node of a device path: Type, SubType, a 16-bit length
// (of the whole node) and Data.
type dpNode struct {
	Type, SubType uint8
	Data          []byte
}

// parseDevicePath returns the nodes of the first device path instance, up
// to its End node.
func parseDevicePath(b []byte) ([]dpNode, error) {
	var nodes []dpNode
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("device path: %d bytes left, less than a node header", len(b))
		}
		n := int(binary.LittleEndian.Uint16(b[2:]))
		if n < 4 || n > len(b) {
			return nil, fmt.Errorf("device path: node %d/%d of length %d with %d bytes left", b[0], b[1], n, len(b))
		}
		node := dpNode{Type: b[0], SubType: b[1], Data: b[4:n]}
		if node.Type == dpEnd {
			// End This Instance (0x01) also ends the first instance,
			// which is the one booted.
			return nodes, nil
		}
		nodes = append(nodes, node)
		b = b[n:]
	}
	return nil, errors.New("device path: no End node")
}

func (n dpNode) marshal() []byte {
	b := []byte{n.Type, n.SubType, 0, 0}
	binary.LittleEndian.PutUint16(b[2:], uint16(4+len(n.Data)))
	return append(b, n.Data...)
}

// isNetwork reports whether the device path boots over the network: it
// names a MAC address, an IP stack or a URI (PXE and HTTP boot options).
func isNetwork(path []byte) bool {
	nodes, err := parseDevicePath(path)
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if n.Type == dpMessaging {
			switch n.SubType {
			case dpMsgMAC, dpMsgIPv4, dpMsgIPv6, dpMsgURI:
				return true
			}
		}
	}
	return false
}

// hardDrive is the HD() node of a GPT partition.
type hardDrive struct {
	Partition uint32 // the partition's entry number in the GPT, from 1
	Start     uint64 // first LBA
	Size      uint64 // in logical blocks
	GUID      [16]byte
}

func (h hardDrive) node() dpNode {
	d := make([]byte, 0, hdLength-4)
	d = binary.LittleEndian.AppendUint32(d, h.Partition)
	d = binary.LittleEndian.AppendUint64(d, h.Start)
	d = binary.LittleEndian.AppendUint64(d, h.Size)
	d = append(d, h.GUID[:]...)
	d = append(d, hdFormatGPT, hdSignatureGUID)
	return dpNode{Type: dpMedia, SubType: dpMediaHardDrive, Data: d}
}

func parseHardDrive(n dpNode) (hardDrive, bool) {
	if n.Type != dpMedia || n.SubType != dpMediaHardDrive || len(n.Data) != hdLength-4 ||
		n.Data[36] != hdFormatGPT || n.Data[37] != hdSignatureGUID {
		return hardDrive{}, false
	}
	h := hardDrive{
		Partition: binary.LittleEndian.Uint32(n.Data),
		Start:     binary.LittleEndian.Uint64(n.Data[4:]),
		Size:      binary.LittleEndian.Uint64(n.Data[12:]),
	}
	copy(h.GUID[:], n.Data[20:36])
	return h, true
}

// filePathNode is File(path): path uses backslashes, as on the ESP.
func filePathNode(path string) dpNode {
	return dpNode{Type: dpMedia, SubType: dpMediaFilePath, Data: utf16z(path)}
}

// diskPath is the device path of a loader on a GPT partition in the short
// form the UEFI spec calls a hard drive media device path (3.1.2): HD()
// then File(), without the controller's path. The boot manager finds the
// partition by its GUID on whichever controller the disk is, and EDK2
// (OVMF) keeps such options when it rebuilds BootOrder from QEMU's
// bootindex list, where it drops unlisted options that start at the PCI
// root.
func diskPath(hd hardDrive, file string) []byte {
	var b []byte
	b = append(b, hd.node().marshal()...)
	b = append(b, filePathNode(file).marshal()...)
	return append(b, dpEnd, dpEndEntire, devicePathEndLen, 0)
}

// bootsLoader reports whether path boots file on the partition hd
// describes. The boot manager matches a short-form HD() by partition
// number and GUID; the file name is compared as FAT would, ignoring case.
func bootsLoader(path []byte, hd hardDrive, file string) bool {
	nodes, err := parseDevicePath(path)
	if err != nil {
		return false
	}
	var onDisk, isFile bool
	for _, n := range nodes {
		if h, ok := parseHardDrive(n); ok && h.GUID == hd.GUID && h.Partition == hd.Partition {
			onDisk = true
		}
		if n.Type == dpMedia && n.SubType == dpMediaFilePath && onDisk {
			name, _, err := parseUTF16z(n.Data)
			isFile = err == nil && strings.EqualFold(strings.ReplaceAll(name, "/", `\`), file)
		}
	}
	return onDisk && isFile
}

// efiGUID encodes a GUID as UEFI stores it (EFI_GUID, UEFI 2.10 appendix
// A): the first three fields little-endian, the last eight bytes in
// order. Partition GUIDs printed as text ("0FC63DAF-8483-...") are in
// that field order.
func efiGUID(s string) ([16]byte, error) {
	var g [16]byte
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("GUID %q: want 8-4-4-4-12 hex digits", s)
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(g[8:], raw[8:])
	return g, nil
}

// utf16z encodes s as NUL-terminated UTF-16LE (CHAR16 strings).
func utf16z(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, 0, 0)
}

// parseUTF16z decodes a NUL-terminated UTF-16LE string at the start of b
// and returns it with the number of bytes it took, NUL included.
func parseUTF16z(b []byte) (string, int, error) {
	var u []uint16
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			return string(utf16.Decode(u)), i + 2, nil
		}
		u = append(u, c)
	}
	return "", 0, errors.New("UTF-16 string without a NUL")
}

// bootOrder decodes BootOrder: an array of UINT16 option numbers.
func parseBootOrder(b []byte) ([]uint16, error) {
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("BootOrder of %d bytes: not an array of UINT16", len(b))
	}
	order := make([]uint16, len(b)/2)
	for i := range order {
		order[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return order, nil
}

func marshalUint16s(v ...uint16) []byte {
	b := make([]byte, 0, 2*len(v))
	for _, n := range v {
		b = binary.LittleEndian.AppendUint16(b, n)
	}
	return b
}

// bootName is the variable of load option n: "Boot" and four upper-case
// hex digits (UEFI 2.10 section 3.3).
func bootName(n uint16) string { return fmt.Sprintf("Boot%04X", n) }

// parseBootName returns the number of a Boot#### variable.
func parseBootName(name string) (uint16, bool) {
	digits, ok := strings.CutPrefix(name, "Boot")
	if !ok || len(digits) != 4 {
		return 0, false
	}
	var b [2]byte
	if _, err := hex.Decode(b[:], []byte(digits)); err != nil || strings.ToUpper(digits) != digits {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[:]), true
}

// formatOrder prints a boot order as efibootmgr does: 0001,0006,0002.
func formatOrder(order []uint16) string {
	var b bytes.Buffer
	for i, n := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%04X", n)
	}
	return b.String()
}
