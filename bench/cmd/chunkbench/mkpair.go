package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
)

// mkpair writes a synthetic v1 → v2 pair for the smoke run, where the
// real Debian pair would take minutes to build: v1 compresses about as
// an OS image does (per MiB a quarter random bytes, a quarter zeros, half
// text), v2 is v1 with what installing a package does to a disk image:
// a few blocks rewritten in place (the package database, a log) and new
// files written into free space, nothing shifted.
func mkpair(fs *flag.FlagSet, args []string) error {
	sizeMiB := fs.Int("size-mib", 64, "image size in MiB (at least 16)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 || *sizeMiB < 16 {
		return fmt.Errorf("mkpair: want -size-mib N (N ≥ 16) V1 V2")
	}
	const mib = 1 << 20
	size := int64(*sizeMiB) * mib
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]byte, size)
	words := []string{"rackboot ", "installs ", "operating ", "systems ", "over ", "PXE ", "lorem ", "ipsum ", "/usr/lib/", "x86_64 "}
	for off := 0; off < len(img); off += mib {
		block := img[off : off+mib]
		q := mib / 4
		fillRandom(rng, block[:q])
		// block[q:2q] stays zero: free space.
		for i := 2 * q; i < mib; {
			i += copy(block[i:], words[rng.IntN(len(words))])
		}
	}
	if err := os.WriteFile(fs.Arg(0), img, 0o644); err != nil {
		return err
	}
	// v2: three 64 KiB blocks rewritten, 1 MiB of new files in the free
	// space of the middle MiB.
	for _, at := range []int64{size / 4, size / 2, 3 * size / 4} {
		fillRandom(rng, img[at+8192:at+8192+64<<10])
	}
	mid := size / 2 / mib * mib
	fillRandom(rng, img[mid+mib/4:mid+mib/2])
	fillRandom(rng, img[mid+mib+mib/4:mid+mib+mib/2])
	fillRandom(rng, img[mid+2*mib+mib/4:mid+2*mib+mib/2])
	fillRandom(rng, img[mid+3*mib+mib/4:mid+3*mib+mib/2])
	f, err := os.Create(fs.Arg(1))
	if err != nil {
		return err
	}
	if _, err := f.Write(img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}
