package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// LimitRate makes the VM's network link slow: the lab delivers it at most
// bitsPerSecond, like a machine behind a congested uplink. What the VM
// sends is not limited. A test uses it to keep a download running long
// enough to interrupt it. Zero removes the limit.
//
// It is a token bucket filter (tc-tbf(8), sch_tbf) on the egress of the
// VM's tap in the server namespace, the direction towards the VM. The
// bucket holds 64 KiB, so a burst is short; packets wait up to a second in
// its queue before they are dropped, so TCP slows down rather than
// retransmits. (netem, which could add delay and loss, is not built into
// the lab's kernel; docs/DESIGN.md, fact 9.)
func (v *VM) LimitRate(ctx context.Context, bitsPerSecond int64) error {
	if bitsPerSecond < 0 {
		return errors.New("lab: negative rate")
	}
	if bitsPerSecond == 0 {
		return tc(ctx, "-n", v.net.Srv, "qdisc", "del", "dev", v.tap, "root")
	}
	return tc(ctx, "-n", v.net.Srv, "qdisc", "replace", "dev", v.tap, "root",
		"tbf", "rate", strconv.FormatInt(bitsPerSecond, 10)+"bit", "burst", "64kb", "latency", "1s")
}

// tc runs tc(8); its error carries tc's own message.
func tc(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "tc", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: tc %s: %w: %s", strings.Join(args, " "), err, bytesTrim(out))
	}
	return nil
}

// LimitServerRate limits the server's own link: what programs in the
// server namespace (the appliance under test) send into the lab, at most
// bitsPerSecond, like an appliance behind a thin uplink. Frames the bridge
// forwards between its ports (one VM to another, a VM to the site's DHCP
// server) are not limited, nor is what the server receives. Zero removes
// the limit.
//
// It is a token bucket filter (tc-tbf(8)) on the egress of the bridge
// device itself: the server's packets leave through it, while frames
// forwarded from port to port go from one port's device to the other's
// without crossing its queue. Same bucket and queue as LimitRate.
func (n *Net) LimitServerRate(ctx context.Context, bitsPerSecond int64) error {
	if bitsPerSecond < 0 {
		return errors.New("lab: negative rate")
	}
	if bitsPerSecond == 0 {
		return tc(ctx, "-n", n.Srv, "qdisc", "del", "dev", Bridge, "root")
	}
	return tc(ctx, "-n", n.Srv, "qdisc", "replace", "dev", Bridge, "root",
		"tbf", "rate", strconv.FormatInt(bitsPerSecond, 10)+"bit", "burst", "64kb", "latency", "1s")
}

// ServerSent is what the server namespace has sent into the lab so far:
// the bridge device's transmit counter, in bytes with their Ethernet
// headers. Frames forwarded between the bridge's ports are not counted.
func (n *Net) ServerSent(ctx context.Context) (int64, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", n.Srv, "-s", "-j", "link", "show", "dev", Bridge).Output()
	if err != nil {
		return 0, fmt.Errorf("lab: ip -s link show %s: %w", Bridge, err)
	}
	var links []struct {
		Stats struct {
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("lab: ip -s -j link show %s printed %q: %v", Bridge, bytesTrim(out), err)
	}
	return links[0].Stats.TX.Bytes, nil
}
