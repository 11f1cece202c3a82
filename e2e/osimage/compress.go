package osimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/rackboot/rackboot/e2e/lab"
)

// countWriter counts the bytes written through it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// compress writes the zstd compression of raw to dst and records both
// sizes and digests in im. One encoder goroutine at a fixed level makes
// the output depend on the input only.
func compress(raw, dst string, im *Image) error {
	src, err := os.Open(raw)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer src.Close()
	rawHash, packedHash := sha256.New(), sha256.New()
	var rawN, packedN countWriter
	err = lab.WriteAtomic(dst, func(w io.Writer) error {
		zw, err := zstd.NewWriter(io.MultiWriter(w, packedHash, &packedN),
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		if _, err := io.Copy(zw, io.TeeReader(io.TeeReader(src, rawHash), &rawN)); err != nil {
			zw.Close()
			return fmt.Errorf("osimage: compress: %w", err)
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("osimage: compress: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	im.Size, im.SHA256 = packedN.n, hex.EncodeToString(packedHash.Sum(nil))
	im.UncompressedSize, im.UncompressedSHA256 = rawN.n, hex.EncodeToString(rawHash.Sum(nil))
	return nil
}

// Unpack writes the disk image to a new file at name, leaving holes where
// it is zeros (most of it), and checks its digest. On error no file is
// left at name.
func (im *Image) Unpack(name string) error {
	out, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	if err := im.unpack(out); err != nil {
		out.Close()
		os.Remove(name)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("osimage: unpack: %w", err)
	}
	return nil
}

func (im *Image) unpack(out *os.File) error {
	src, err := os.Open(im.Path)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer src.Close()
	zr, err := zstd.NewReader(src)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer zr.Close()
	h := sha256.New()
	buf, zero := make([]byte, 1<<16), make([]byte, 1<<16)
	var off int64
	for {
		n, err := io.ReadFull(zr, buf)
		if n > 0 {
			h.Write(buf[:n])
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, err := out.WriteAt(buf[:n], off); err != nil {
					return fmt.Errorf("osimage: unpack: %w", err)
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("osimage: unpack %s: %w", im.Path, err)
		}
	}
	if err := out.Truncate(off); err != nil {
		return fmt.Errorf("osimage: unpack: %w", err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); im.UncompressedSHA256 != "" && sum != im.UncompressedSHA256 {
		return fmt.Errorf("osimage: unpack %s: sha256 %s, want %s", im.Path, sum, im.UncompressedSHA256)
	}
	return nil
}
