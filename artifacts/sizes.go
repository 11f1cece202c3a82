package artifacts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/rackboot/rackboot/agentapi"
)

// Sizes measures the OS images of an artifacts directory for the plans:
// the size of each file as stored, and its decompressed size, which the
// agent needs to report progress as a fraction and to refuse a too-small
// disk before writing.
//
// The decompressed size of a zstd image whose frames all state their
// content size (the zstd tool writes it when it compresses a file) is read
// from the frame headers, at no cost. Any other image is decompressed once
// and counted; the result is remembered for as long as the file keeps its
// size, modification time and inode, so each version of an image is
// measured once. Concurrent requests for an image being measured wait for
// that one measurement. Sizes is safe for concurrent use.
type Sizes struct {
	// Dir is the artifacts directory; names are resolved inside it as the
	// Handler resolves them (no way out through ".." or symbolic links).
	Dir string

	raw stampCache[int64]
}

// Image returns the stored and decompressed sizes of the image name (a
// path relative to Dir) in the given format (agentapi.FormatAuto
// detects it).
func (s *Sizes) Image(name, format string) (stored, raw int64, err error) {
	f, stamp, err := openRegular(s.Dir, name, "image")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	raw, err = s.raw.get(format+"\x00"+name, stamp, func() (int64, error) {
		n, err := rawSize(f, stamp.size, format)
		if err != nil {
			return 0, fmt.Errorf("artifacts: image %s: %w", name, err)
		}
		return n, nil
	})
	if err != nil {
		return 0, 0, err
	}
	return stamp.size, raw, nil
}

// rawSize is the decompressed size of the image in f, of size bytes.
func rawSize(f *os.File, size int64, format string) (int64, error) {
	if format == agentapi.FormatAuto {
		head := make([]byte, agentapi.MagicLen)
		n, err := f.ReadAt(head, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		format = agentapi.SniffFormat(head[:n])
	}
	switch format {
	case agentapi.FormatRaw:
		return size, nil
	case agentapi.FormatZstd:
		if n, ok := zstdContentSize(f, size); ok {
			return n, nil
		}
	}
	dec, err := agentapi.NewDecompressor(format, io.NewSectionReader(f, 0, size))
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	n, err := io.Copy(io.Discard, dec)
	if err != nil {
		return 0, fmt.Errorf("decompressing to measure it: %w", err)
	}
	return n, nil
}

// zstdContentSize sums the content sizes the frame headers of a zstd file
// state (RFC 8878, 3.1.1), walking from frame to frame over the block
// headers. It reports false when a frame does not state its size or the
// file is not what the headers say, and the caller decompresses instead.
func zstdContentSize(r io.ReaderAt, size int64) (int64, bool) {
	var total, off int64
	var b [14]byte
	for off < size {
		if _, err := r.ReadAt(b[:4], off); err != nil {
			return 0, false
		}
		magic := binary.LittleEndian.Uint32(b[:4])
		if magic&0xFFFFFFF0 == 0x184D2A50 { // a skippable frame
			if _, err := r.ReadAt(b[:4], off+4); err != nil {
				return 0, false
			}
			off += 8 + int64(binary.LittleEndian.Uint32(b[:4]))
			continue
		}
		if magic != 0xFD2FB528 {
			return 0, false
		}
		off += 4
		if _, err := r.ReadAt(b[:1], off); err != nil {
			return 0, false
		}
		fhd := b[0]
		fcsFlag, single, checksum, dictFlag := fhd>>6, fhd&0x20 != 0, fhd&0x04 != 0, fhd&0x03
		fcsLen := [4]int{0, 2, 4, 8}[fcsFlag]
		if fcsFlag == 0 && single {
			fcsLen = 1
		}
		if fcsLen == 0 {
			return 0, false // content size not stated
		}
		hdr := 1 + [4]int{0, 1, 2, 4}[dictFlag] + fcsLen
		if !single {
			hdr++ // window descriptor
		}
		if _, err := r.ReadAt(b[:hdr], off); err != nil {
			return 0, false
		}
		fcs := b[hdr-fcsLen : hdr]
		switch fcsLen {
		case 1:
			total += int64(fcs[0])
		case 2:
			total += int64(binary.LittleEndian.Uint16(fcs)) + 256
		case 4:
			total += int64(binary.LittleEndian.Uint32(fcs))
		case 8:
			n := binary.LittleEndian.Uint64(fcs)
			if n > 1<<62 {
				return 0, false
			}
			total += int64(n)
		}
		off += int64(hdr)
		for last := false; !last; {
			if _, err := r.ReadAt(b[:3], off); err != nil {
				return 0, false
			}
			bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
			last = bh&1 != 0
			off += 3
			switch (bh >> 1) & 3 {
			case 0, 2: // raw, compressed: Block_Size bytes follow
				off += int64(bh >> 3)
			case 1: // RLE: one byte follows
				off++
			default:
				return 0, false
			}
		}
		if checksum {
			off += 4
		}
	}
	return total, off == size
}
