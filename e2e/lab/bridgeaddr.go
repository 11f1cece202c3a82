package lab

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
)

// PinBridgeAddress fixes the MAC address of the lab's bridge, where the
// server listens. A Linux bridge whose address was never set takes the
// lowest address of its ports, so it changes whenever a VM's tap with a
// lower (random) address joins or leaves. Every neighbour that cached the
// old address (the client namespace, an agent that found the server)
// then sends the server's traffic where nobody answers, until its ARP
// entry is probed again, seconds to a minute later: a CLI call in the
// client namespace timed out that way while machines came and went.
// Setting the address, even to the one the bridge has, makes the kernel
// keep it. Call it before the first VM starts.
func (n *Net) PinBridgeAddress(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "ip", "-n", n.Srv, "-o", "link", "show", "dev", Bridge).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip link show %s: %w: %s", Bridge, err, bytesTrim(out))
	}
	hw, err := etherAddress(string(out))
	if err != nil {
		return err
	}
	return ip(ctx, "-n", n.Srv, "link", "set", "dev", Bridge, "address", hw.String())
}

// etherAddress reads the address of `ip -o link show`: "… link/ether
// 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff …".
func etherAddress(line string) (net.HardwareAddr, error) {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "link/ether" {
			hw, err := net.ParseMAC(f[i+1])
			if err != nil {
				return nil, fmt.Errorf("lab: bridge address: %w", err)
			}
			return hw, nil
		}
	}
	return nil, fmt.Errorf("lab: no link/ether address in %q", strings.TrimSpace(line))
}
