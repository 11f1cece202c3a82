package imaging

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/google/uuid"

	"github.com/rackboot/rackboot/agentapi"
)

// makeFilesystem creates the file system a layout asks for on an empty
// partition of n bytes at off of the target, labelled with the
// partition's name. The partition's first and last MiB have been zeroed.
func (j *job) makeFilesystem(ctx context.Context, off, n int64, fs, name string) error {
	if fs == agentapi.FilesystemXFS {
		return j.makeXFS(ctx, off, n, name)
	}
	return makeFilesystem(j.d.Backend, j.f, off, n, j.ss, fs, name)
}

// makeFilesystem creates the file systems the installer writes itself.
// ext4 is go-diskfs's, which e2fsck passes clean; it needs 512-byte
// sectors. swap is written here: its header is one page. vfat is the
// installer's FAT32. xfs is mkfs.xfs's (makeXFS).
func makeFilesystem(b backend.Storage, w io.WriterAt, off, n int64, sectorSize int, fs, name string) error {
	id := uuid.New()
	switch fs {
	case agentapi.FilesystemExt4:
		if sectorSize != 512 {
			return fmt.Errorf("ext4 on %d-byte sectors: the installer creates ext4 on 512-byte sectors only", sectorSize)
		}
		if _, err := ext4.Create(b, n, off, int64(sectorSize), &ext4.Params{UUID: &id, VolumeName: fsLabel(name)}); err != nil {
			return fmt.Errorf("create ext4: %w", err)
		}
		return nil
	case agentapi.FilesystemSwap:
		return writeSwapHeader(w, off, n, id, fsLabel(name))
	case agentapi.FilesystemVFAT:
		// A preserved vfat partition on its first install.
		return makeFAT32(b, off, n, sectorSize, fatLabel(name), nil, false)
	}
	return fmt.Errorf("the installer cannot create a %q file system", fs)
}

// fatLabel is a FAT volume label from a partition name: 11 characters of
// A-Z 0-9 _ -.
func fatLabel(name string) string {
	b := []byte(strings.ToUpper(name))
	out := b[:0]
	for _, c := range b {
		if 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			out = append(out, c)
		}
	}
	if len(out) > 11 {
		out = out[:11]
	}
	if len(out) == 0 {
		return "DATA"
	}
	return string(out)
}

// fsLabel is a file system label from a partition name: ext4 and swap
// labels hold 16 bytes.
func fsLabel(name string) string { return cutLabel(name, 16) }

// cutLabel returns the longest prefix of name of at most n bytes that
// ends on a character boundary: a label cut inside a UTF-8 sequence
// would not be valid UTF-8.
func cutLabel(name string, n int) string {
	if len(name) <= n {
		return name
	}
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return name[:n]
}

// swapPage is the page size the swap header is written for: the header
// fills one page and the kernel looks for its signature at the end of
// its own page. 4 KiB is the page of x86-64 and of the usual arm64
// kernels.
const swapPage = 4096

// writeSwapHeader writes a Linux swap area header (version 1, as mkswap
// does: include/linux/swap.h, union swap_header) at the start of the n
// bytes at off.
func writeSwapHeader(w io.WriterAt, off, n int64, id uuid.UUID, label string) error {
	pages := n / swapPage
	if pages < 10 {
		return fmt.Errorf("swap of %d bytes: at least 10 pages needed", n)
	}
	if pages-1 > 1<<32-1 {
		pages = 1 << 32
	}
	page := make([]byte, swapPage)
	// bootbits[1024], then version, last_page, nr_badpages, uuid, label.
	le := binary.LittleEndian
	le.PutUint32(page[1024:], 1)
	le.PutUint32(page[1028:], uint32(pages-1))
	le.PutUint32(page[1032:], 0)
	copy(page[1036:1052], id[:])
	copy(page[1052:1068], label)
	copy(page[swapPage-10:], "SWAPSPACE2")
	if _, err := w.WriteAt(page, off); err != nil {
		return fmt.Errorf("write swap header: %w", err)
	}
	return nil
}
