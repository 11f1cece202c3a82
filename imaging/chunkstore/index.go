package chunkstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The chunk sizes of every chunked image: FastCDC with these bounds, the
// sizes casync uses by default. They are in the index, so a later change
// cannot mix up the chunkings of two images.
const (
	MinChunk = 16 << 10
	AvgChunk = 64 << 10
	MaxChunk = 256 << 10
	// Normalization is FastCDC's: how tightly chunk sizes gather around
	// AvgChunk. The library's default, 2, made non-zero chunks of 106 KB
	// on average on the e2e Debian image, casync 75 KB; 3 makes 91 KB,
	// and a one-package upgrade fetches 11 % less (bench/README.md, P9).
	Normalization = 3
)

// ChunkID is a chunk's name: the SHA-256 of its uncompressed bytes. The
// zero ChunkID marks an all-zero chunk, which is not stored.
type ChunkID [sha256.Size]byte

// String is the id in hex, as in the store's file names.
func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id marks an all-zero chunk.
func (id ChunkID) IsZero() bool { return id == ChunkID{} }

// ParseChunkID parses 64 hex digits.
func ParseChunkID(s string) (ChunkID, error) {
	var id ChunkID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("chunkstore: chunk id %q is not 64 hex digits", s)
	}
	copy(id[:], b)
	return id, nil
}

// Index describes a chunked image: its chunks in order, which cover it
// without gaps, and the digest of the whole. `rackboot image add` writes
// it; the agent assembles the image from it.
type Index struct {
	// Size is the image's size in bytes.
	Size int64
	// SHA256 is the digest of the whole image.
	SHA256 [sha256.Size]byte
	// Source is the SHA-256 of the file the image was imported from,
	// as stored (compressed): the digest a streamed version of the same
	// file has in the catalog. It lets the appliance find the index of
	// an image a machine got as a stream (profiles.Planner.Twin).
	Source [sha256.Size]byte
	// MinChunk, AvgChunk and MaxChunk are the chunker's bounds.
	MinChunk, AvgChunk, MaxChunk int
	Chunks                       []IndexChunk
}

// IndexChunk is one chunk of an Index.
type IndexChunk struct {
	// Offset is where the chunk starts in the image; Size its length.
	Offset int64
	Size   int64
	// ID is the SHA-256 of the chunk's bytes; zero for an all-zero chunk.
	ID ChunkID
	// Stored is the size of the chunk's file in the store (compressed);
	// 0 for an all-zero chunk.
	Stored int64
}

// Digest is the hex SHA-256 of the whole image.
func (ix *Index) Digest() string { return hex.EncodeToString(ix.SHA256[:]) }

// SourceDigest is the hex SHA-256 of the file the image was imported
// from.
func (ix *Index) SourceDigest() string { return hex.EncodeToString(ix.Source[:]) }

// StoredSize is the size of the distinct stored chunks of the image:
// what a machine with nothing of it on its disk fetches.
func (ix *Index) StoredSize() int64 {
	seen := make(map[ChunkID]bool, len(ix.Chunks))
	var n int64
	for _, c := range ix.Chunks {
		if c.ID.IsZero() || seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		n += c.Stored
	}
	return n
}

// ChunkPath is the file of chunk id in the store directory dir:
// dir/XXXX/ID.zst, XXXX the id's first four hex digits (65 536
// directories at most, each of a manageable size).
func ChunkPath(dir string, id ChunkID) string {
	s := id.String()
	return filepath.Join(dir, s[:4], s+".zst")
}

// The index file: a header, one record per chunk, and the SHA-256 of all
// that, so that a damaged or cut index is refused rather than half read.
//
//	magic "RBIDX\x00\x01\n"
//	u64 image size, [32] image SHA-256, [32] source file SHA-256,
//	u32 min, avg, max chunk, u64 chunk count
//	per chunk: u32 size, u32 stored size, [32] id
//	[32] SHA-256 of the bytes before it
//
// Integers are big-endian; offsets follow from the sizes.
var indexMagic = []byte("RBIDX\x00\x01\n")

const (
	indexHeaderLen = 8 + 8 + 32 + 32 + 3*4 + 8
	indexRecordLen = 4 + 4 + 32
	// maxIndexChunks bounds the chunk count read from a header before
	// the records are: 64 Mi chunks of the smallest size is 1 PiB.
	maxIndexChunks = 1 << 26
)

// ErrIndex wraps the errors of an index that cannot be read.
var ErrIndex = errors.New("chunkstore: bad chunk index")

// WriteTo writes the index in its file format.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
	buf := make([]byte, indexHeaderLen)
	copy(buf, indexMagic)
	binary.BigEndian.PutUint64(buf[8:], uint64(ix.Size))
	copy(buf[16:], ix.SHA256[:])
	copy(buf[48:], ix.Source[:])
	binary.BigEndian.PutUint32(buf[80:], uint32(ix.MinChunk))
	binary.BigEndian.PutUint32(buf[84:], uint32(ix.AvgChunk))
	binary.BigEndian.PutUint32(buf[88:], uint32(ix.MaxChunk))
	binary.BigEndian.PutUint64(buf[92:], uint64(len(ix.Chunks)))
	bw.Write(buf)
	rec := make([]byte, indexRecordLen)
	for _, c := range ix.Chunks {
		binary.BigEndian.PutUint32(rec, uint32(c.Size))
		binary.BigEndian.PutUint32(rec[4:], uint32(c.Stored))
		copy(rec[8:], c.ID[:])
		bw.Write(rec)
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	n := int64(indexHeaderLen + len(ix.Chunks)*indexRecordLen)
	m, err := w.Write(h.Sum(nil))
	return n + int64(m), err
}

// ReadIndex reads and checks an index: its checksum, chunk sizes within
// the bounds it states, chunks that add up to the image, stored sizes
// for exactly the non-zero chunks.
func ReadIndex(r io.Reader) (*Index, error) {
	h := sha256.New()
	br := bufio.NewReaderSize(r, 1<<16)
	head := make([]byte, indexHeaderLen)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrIndex, err)
	}
	h.Write(head)
	if !bytes.Equal(head[:8], indexMagic) {
		return nil, fmt.Errorf("%w: not a rackboot chunk index (magic %q)", ErrIndex, head[:8])
	}
	ix := &Index{
		Size:     int64(binary.BigEndian.Uint64(head[8:])),
		MinChunk: int(binary.BigEndian.Uint32(head[80:])),
		AvgChunk: int(binary.BigEndian.Uint32(head[84:])),
		MaxChunk: int(binary.BigEndian.Uint32(head[88:])),
	}
	copy(ix.SHA256[:], head[16:48])
	copy(ix.Source[:], head[48:80])
	count := binary.BigEndian.Uint64(head[92:])
	if ix.Size < 0 || count > maxIndexChunks || ix.MinChunk <= 0 || ix.MinChunk > ix.AvgChunk || ix.AvgChunk > ix.MaxChunk {
		return nil, fmt.Errorf("%w: header: size %d, %d chunks of %d/%d/%d bytes", ErrIndex, ix.Size, count, ix.MinChunk, ix.AvgChunk, ix.MaxChunk)
	}
	// The count is not trusted for the allocation: the records are.
	ix.Chunks = make([]IndexChunk, 0, min(count, 1<<16))
	rec := make([]byte, indexRecordLen)
	var off int64
	for i := range count {
		if _, err := io.ReadFull(br, rec); err != nil {
			return nil, fmt.Errorf("%w: chunk %d of %d: %v", ErrIndex, i+1, count, err)
		}
		h.Write(rec)
		c := IndexChunk{Offset: off, Size: int64(binary.BigEndian.Uint32(rec)), Stored: int64(binary.BigEndian.Uint32(rec[4:]))}
		copy(c.ID[:], rec[8:])
		last := i == count-1
		switch {
		case c.Size <= 0 || c.Size > int64(ix.MaxChunk) || (c.Size < int64(ix.MinChunk) && !last):
			return nil, fmt.Errorf("%w: chunk %d at byte %d: size %d outside %d-%d", ErrIndex, i+1, off, c.Size, ix.MinChunk, ix.MaxChunk)
		case c.ID.IsZero() != (c.Stored == 0):
			return nil, fmt.Errorf("%w: chunk %d at byte %d: stored size %d for id %s", ErrIndex, i+1, off, c.Stored, c.ID)
		}
		ix.Chunks = append(ix.Chunks, c)
		off += c.Size
	}
	if off != ix.Size {
		return nil, fmt.Errorf("%w: the chunks add up to %d bytes, the image is %d", ErrIndex, off, ix.Size)
	}
	sum := h.Sum(nil)
	tail := make([]byte, sha256.Size)
	if _, err := io.ReadFull(br, tail); err != nil {
		return nil, fmt.Errorf("%w: checksum: %v", ErrIndex, err)
	}
	if !bytes.Equal(tail, sum) {
		return nil, fmt.Errorf("%w: checksum mismatch (damaged file)", ErrIndex)
	}
	if n, _ := br.Read(tail[:1]); n > 0 {
		return nil, fmt.Errorf("%w: bytes after the checksum", ErrIndex)
	}
	return ix, nil
}

// ReadIndexFile reads the index in the file at path.
func ReadIndexFile(path string) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ix, err := ReadIndex(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ix, nil
}

// WriteIndexFile writes the index to path atomically: a temporary file
// in the same directory, synced, then renamed over path.
func WriteIndexFile(path string, ix *Index) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		_, err := ix.WriteTo(w)
		return err
	})
}

// writeFileAtomic writes a file through fill into a temporary file next
// to path, syncs it and renames it to path; on any error path is left as
// it was.
func writeFileAtomic(path string, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = fill(f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// IndexFileSize is the size of the index file of an image of chunks
// chunks.
func IndexFileSize(chunks int) int64 {
	return indexHeaderLen + int64(chunks)*indexRecordLen + sha256.Size
}
