package lab

import (
	"context"
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
