package agentapi

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Magic numbers of the compressed formats: zstd (RFC 8878, 3.1.1), gzip
// (RFC 1952, 2.3.1), xz (.xz file format 1.2.1, 2.1.1.1).
var (
	zstdMagic = []byte{0x28, 0xB5, 0x2F, 0xFD}
	gzipMagic = []byte{0x1F, 0x8B}
	xzMagic   = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
)

// MagicLen is how many leading bytes SniffFormat needs.
const MagicLen = 6

// SniffFormat names the format of a stream from its first bytes, raw when
// none matches.
func SniffFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, zstdMagic):
		return FormatZstd
	case bytes.HasPrefix(head, gzipMagic):
		return FormatGzip
	case bytes.HasPrefix(head, xzMagic):
		return FormatXz
	}
	return FormatRaw
}

// NewDecompressor returns a reader of the decompressed stream r, for a
// format of the plan (FormatRaw, FormatZstd, FormatGzip, FormatXz). Closing it
// releases the decoder's goroutines and memory; it does not close r. With
// a nil r it only checks that the format is known.
//
// Concatenated streams are decoded as one, as zstd -d, gzip -d and xz -d
// do: all three formats allow it and parallel compressors produce it.
func NewDecompressor(format string, r io.Reader) (io.ReadCloser, error) {
	switch format {
	case FormatRaw, FormatZstd, FormatGzip, FormatXz:
	default:
		return nil, fmt.Errorf("agentapi: unknown image format %q", format)
	}
	if r == nil {
		return nil, nil
	}
	switch format {
	case FormatZstd:
		// The default concurrency (up to 4 blocks in flight) decodes ahead
		// of the reader. The default 512 MiB window limit admits images
		// made with zstd --long up to 29.
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("agentapi: zstd: %w", err)
		}
		return d.IOReadCloser(), nil
	case FormatGzip:
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("agentapi: gzip: %w", err)
		}
		return z, nil
	case FormatXz:
		z, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("agentapi: xz: %w", err)
		}
		return io.NopCloser(z), nil
	}
	return io.NopCloser(r), nil
}
