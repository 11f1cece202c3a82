package main

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
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

// writeFleet writes a profiles file listing every MAC as a host that
// installs one version: enough for the registry to mint install tokens and
// for the API to build each agent a plan. The image and installer need not
// exist: no agent downloads them.
func writeFleet(w io.Writer, hosts []net.HardwareAddr) error {
	var b strings.Builder
	b.WriteString(`# Written by bench/cmd/agentload -write-fleet: the simulated agents of P5.
versions:
  - name: bench-1
    number: 1
    image: { url: bench-1.img.zst, sha256: ` + strings.Repeat("ab", 32) + `, format: zstd, kind: whole-disk }
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
