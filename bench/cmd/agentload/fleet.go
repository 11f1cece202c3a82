package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// macs returns n locally administered MACs: prefix, then the agent number
// in three bytes. The fleet file and the agents use the same list.
func macs(prefix string, n int) ([]net.HardwareAddr, error) {
	p, err := net.ParseMAC(prefix + ":00:00:00")
	if err != nil || len(p) != 6 {
		return nil, fmt.Errorf("mac prefix %q: want three bytes like 52:54:02", prefix)
	}
	if n < 1 || n > 1<<24 {
		return nil, fmt.Errorf("%d agents: want 1 to %d", n, 1<<24)
	}
	out := make([]net.HardwareAddr, n)
	for i := range out {
		m := slices.Clone(p)
		m[3], m[4], m[5] = byte(i>>16), byte(i>>8), byte(i)
		out[i] = m
	}
	return out, nil
}

// fleetImage is the version's image file name under the artifacts folder.
const fleetImage = "bench-1.img.zst"

// writeImage writes the fleet version's image into dir: 1 MiB of zeros,
// zstd-compressed, so the server can measure its sizes for the plans it
// hands out (it refuses a plan whose image it cannot read). It returns the
// file's SHA-256, which the fleet file names. No agent downloads it.
func writeImage(dir string) (string, error) {
	var b bytes.Buffer
	enc, err := zstd.NewWriter(&b)
	if err != nil {
		return "", err
	}
	if _, err := enc.Write(make([]byte, 1<<20)); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, fleetImage), b.Bytes(), 0o644); err != nil {
		return "", err
	}
	// The installer's files: no agent boots them, but rackboot holds the
	// hosts of a version whose installer files are missing (its catalog
	// check), and the scripts must be the installer's.
	for _, name := range []string{"vmlinuz", "initrd.img"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("bench: no machine boots this "+name+"\n"), 0o644); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// writeFleet writes a profiles file listing every MAC as a host that
// installs one version: enough for the registry to mint install tokens and
// for the API to build each agent a plan. The image is the one writeImage
// wrote, with its SHA-256; the installer's files are its stand-ins.
func writeFleet(w io.Writer, hosts []net.HardwareAddr, imageSHA string) error {
	var b strings.Builder
	b.WriteString(`# Written by bench/cmd/agentload -write-fleet: the simulated agents of P5.
versions:
  - name: bench-1
    number: 1
    image: { url: ` + fleetImage + `, sha256: ` + imageSHA + `, format: zstd, kind: whole-disk }
    installer: { kernel: vmlinuz, initrd: initrd.img, cmdline: "console=ttyS0,115200" }
layouts:
  - name: small
    disk: { select: smallest, min_size: 1GiB }
    partitions:
      - { name: cidata, size: 16MiB, type: linux, content: config }
defaults:
  version: bench-1
  layout: small
hosts:
`)
	for i, m := range hosts {
		fmt.Fprintf(&b, "  - { mac: %q, hostname: agent-%05d }\n", m.String(), i)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
