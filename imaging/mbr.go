package imaging

import (
	"encoding/binary"
	"fmt"
	"io"
)

// writeProtectiveMBR writes the protective MBR of a GPT disk of the given
// number of logical sectors into LBA 0 (UEFI spec 2.10, 5.2.3): one
// partition of type 0xEE from LBA 1 to the end of the disk, capped at
// 0xFFFFFFFF on disks too large to express, and the 0x55AA signature. The
// MBR is 512 bytes whatever the sector size.
//
// We write it rather than let go-diskfs do it because go-diskfs v1.9.4
// truncates the size to 32 bits (a wrong size on disks over 2 TiB) and, on
// 4Kn disks, looks for the signature at the end of the 4 KiB sector, so it
// reads its own protective MBR back as absent and does not rewrite an
// image's. The boot code before the partition entries is kept, and so is a
// boot indicator set on an existing 0xEE entry: some BIOSes only boot a
// disk with an active partition, and images made for them set it.
func writeProtectiveMBR(rw interface {
	io.ReaderAt
	io.WriterAt
}, sectors uint64) error {
	mbr := make([]byte, 512)
	if _, err := rw.ReadAt(mbr, 0); err != nil {
		return fmt.Errorf("imaging: read MBR: %w", err)
	}
	entries := mbr[446:510]
	boot := byte(0)
	if entries[4] == 0xEE && entries[0] == 0x80 {
		boot = 0x80
	}
	clear(entries)
	e := entries[:16]
	e[0] = boot
	copy(e[1:4], []byte{0x00, 0x02, 0x00}) // CHS of LBA 1
	e[4] = 0xEE
	copy(e[5:8], []byte{0xFF, 0xFF, 0xFF}) // CHS cannot express the end
	binary.LittleEndian.PutUint32(e[8:12], 1)
	binary.LittleEndian.PutUint32(e[12:16], uint32(min(sectors-1, 0xFFFFFFFF)))
	mbr[510], mbr[511] = 0x55, 0xAA
	if _, err := rw.WriteAt(mbr[446:], 446); err != nil {
		return fmt.Errorf("imaging: write protective MBR: %w", err)
	}
	return nil
}
