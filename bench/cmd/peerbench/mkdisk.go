package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

const mib = 1 << 20

// mkdisk writes a whole-disk image: a GPT with one Linux root partition
// from 1 MiB to 1 MiB before the end, its contents like an OS image's
// for chunking and compression. Every eighth MiB is zeros (free space:
// zero chunks, neither stored nor fetched); every other MiB is 40 %
// random bytes (compressed binaries and files: what zstd cannot shrink),
// 20 % zeros and 40 % text from a small vocabulary (what zstd shrinks
// several times). The stored chunks come to about 40 % of the image, as a
// Debian image's do (P9's debian-12.2: 43 %). The same size gives the
// same bytes.
func mkdisk(fs *flag.FlagSet, args []string) error {
	sizeMiB := fs.Int("size-mib", 256, "image size in MiB (at least 8)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *sizeMiB < 8 {
		return fmt.Errorf("mkdisk: want -size-mib N (N ≥ 8) FILE")
	}
	size := int64(*sizeMiB) * mib
	f, err := os.Create(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := writeDisk(f, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeDisk(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	// Fixed GUIDs: the same size gives the same image, so the same chunks.
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		GUID: "5A8B0E41-7C3D-4F2A-9B61-0D8E2C4F6A18", Partitions: []*gpt.Partition{
			{Index: 1, Name: "root", Type: gpt.LinuxRootX86_64, Start: mib / 512, End: uint64(size-mib)/512 - 1,
				GUID: "0C9E5B7D-3A14-4E68-8F2B-6D1A9C3E5B70"},
		}}
	if err := tbl.Write(f, size); err != nil {
		return fmt.Errorf("mkdisk: the partition table: %w", err)
	}
	rng := rand.New(rand.NewPCG(8, uint64(size)))
	words := []string{"rackboot ", "installs ", "operating ", "systems ", "over ", "PXE ", "/usr/lib/", "x86_64-linux-gnu ",
		"libc.so.6 ", "systemd ", "\x7fELF\x02\x01\x01", "debian ", "\n"}
	block := make([]byte, mib)
	for off := int64(mib); off < size-mib; off += mib {
		clear(block)
		if off/mib%8 == 7 {
			// Every eighth MiB is free space: zero chunks.
			if _, err := f.WriteAt(block, off); err != nil {
				return err
			}
			continue
		}
		r, z := 4*mib/10, 2*mib/10
		fillRandom(rng, block[:r])
		// block[r:r+z] stays zero: free space.
		for i := r + z; i < mib; {
			i += copy(block[i:], words[rng.IntN(len(words))])
		}
		if _, err := f.WriteAt(block, off); err != nil {
			return err
		}
	}
	return nil
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}
