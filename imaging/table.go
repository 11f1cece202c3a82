package imaging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// gptSignature opens every GPT header (UEFI spec 2.10, 5.3.2).
var gptSignature = []byte("EFI PART")

// readGPT returns the GPT of f, or nil when it has none. When the primary
// header or entries are damaged go-diskfs falls back to the backup at the
// end of the disk. When both are damaged but a signature is there, the
// table is returned as an error: it may describe partitions a plan wants
// to preserve.
func readGPT(f backend.File, size int64, sectorSize int) (*gpt.Table, error) {
	t, err := gpt.Read(f, sectorSize, sectorSize)
	if err == nil {
		return t, nil
	}
	lastLBA := size/int64(sectorSize) - 1
	for _, lba := range []int64{1, lastLBA} {
		sig := make([]byte, len(gptSignature))
		if _, rerr := f.ReadAt(sig, lba*int64(sectorSize)); rerr == nil && bytes.Equal(sig, gptSignature) {
			return nil, fmt.Errorf("imaging: the disk's GPT is damaged: %w", err)
		}
	}
	return nil, nil
}

// writeGPT writes t to the disk, reads it back and has the kernel re-read it.
//
// The read-back is not optional: go-diskfs issue 405 (closed unfixed)
// leaves partitions built in code without the table's logical sector
// size, so their GetStart assumes 512-byte sectors; on a 4Kn disk a file
// system created right after Partition lands at 1/8 of the right offset.
// Reading the table back yields partitions that know their sector size.
//
// The kernel re-read (BLKRRPART, falling back to per-partition BLKPG) is
// done by go-diskfs from the re-read table, so the BLKPG fallback also gets
// byte offsets right on 4Kn. We write everything through the whole-disk
// device at computed offsets, so a deferred re-read (some partition still
// busy) does not stop the install: the new table is on disk and the
// installed system boots with it; it is logged.
func writeGPT(d *disk.Disk, t *gpt.Table, log *slog.Logger) error {
	w, err := d.Backend.Writable()
	if err != nil {
		return fmt.Errorf("imaging: write GPT: %w", err)
	}
	if err := t.Write(w, d.Size); err != nil {
		return fmt.Errorf("imaging: write GPT: %w", err)
	}
	if err := rereadGPT(d, log); err != nil {
		return err
	}
	return nil
}

// rereadGPT reads the table back into d and tells the kernel about it.
func rereadGPT(d *disk.Disk, log *slog.Logger) error {
	if _, err := d.GetPartitionTable(); err != nil {
		return fmt.Errorf("imaging: read back GPT: %w", err)
	}
	return rereadKernel(d, log)
}

// rereadKernel has the kernel re-read the partition table of d (whatever
// kind the disk now has; d.Table nil means none we know of).
func rereadKernel(d *disk.Disk, log *slog.Logger) error {
	if err := d.ReReadPartitionTable(); err != nil {
		if errors.Is(err, disk.ErrReReadDeferred) {
			log.Warn("kernel keeps the old partition table until reboot", "err", err)
			return nil
		}
		return fmt.Errorf("imaging: kernel re-read of the partition table: %w", err)
	}
	return nil
}

// zeroRange writes n zero bytes at off, in chunks of at most 1 MiB.
func zeroRange(w io.WriterAt, off, n int64) error {
	buf := make([]byte, min(n, alignBytes))
	for n > 0 {
		c := min(n, int64(len(buf)))
		if _, err := w.WriteAt(buf[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}
