// Package testimage makes the images the chunked-image tests of imaging
// and imaging/chunkstore cut: bytes that chunk and compress like an OS
// image's, and their next version.
package testimage

import (
	"bytes"
	"math/rand/v2"
)

// Bytes returns size bytes that chunk and compress like an OS image:
// words from a small vocabulary with random bytes among them, and a
// 1 MiB zero run in the middle, as free space is. The same seed gives
// the same bytes.
func Bytes(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"usr", "lib", "x86_64", "linux", "gnu", "libc", "so", "6", "etc", "debian", "systemd", "\x00\x00", "\x7fELF", "\n"}
	var b bytes.Buffer
	for b.Len() < size {
		if b.Len() > size/2 && b.Len() < size/2+(1<<20) {
			b.Write(make([]byte, 1<<20))
			continue
		}
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(8) == 0 {
			var x [8]byte
			for i := range x {
				x[i] = byte(r.Uint32())
			}
			b.Write(x[:])
		}
	}
	return b.Bytes()[:size]
}

// Next changes img as a package upgrade changes a file system image: two
// places rewritten, and, with shift, that many bytes inserted near the
// start, which move everything behind them.
func Next(img []byte, shift int) []byte {
	v2 := bytes.Clone(img)
	for _, at := range []int{len(img) / 5, len(img) * 3 / 5} {
		copy(v2[at:], bytes.Repeat([]byte("new package "), 300))
	}
	if shift > 0 {
		at := len(img) / 10
		v2 = append(v2[:at:at], append(Bytes(99, shift), v2[at:]...)...)
	}
	return v2
}
