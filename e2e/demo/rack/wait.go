package rack

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
)

// The agent's last console lines (cmd/rackboot-agent): an attempt ends
// with one of them, and then the agent reboots the machine.
const (
	AgentDone   = "rackboot-agent: install done"
	AgentFailed = "rackboot-agent: INSTALL FAILED"
)

// offWait bounds the time between a machine's last words and the end of
// QEMU: the agent shows a failure for 10 s before it reboots.
const offWait = 60 * time.Second

// Ending is how a power-on ended: the console line that concluded it, and
// when QEMU exited, from power-on.
type Ending struct {
	Line lab.Line
	Off  time.Duration
}

// WaitInstall waits for the agent on vm to finish its attempt and reboot
// the machine, which ends QEMU (lab machines run with -no-reboot). done
// reports whether the agent said the install was done; a failed attempt
// is not an error, a machine that never got that far is.
func WaitInstall(ctx context.Context, vm *lab.VM, timeout time.Duration) (end Ending, done bool, err error) {
	pattern := regexp.QuoteMeta(AgentDone) + "|" + regexp.QuoteMeta(AgentFailed)
	if end, err = waitEnd(ctx, vm, pattern, timeout); err != nil {
		return end, false, err
	}
	return end, strings.Contains(end.Line.Text, AgentDone), nil
}

// WaitOS waits for the demo OS on vm to report and power off, and returns
// what it reported (see osimage.Report).
func WaitOS(ctx context.Context, vm *lab.VM, timeout time.Duration) (osimage.Report, Ending, error) {
	end, err := waitEnd(ctx, vm, "^"+osimage.MarkerDone+"|^"+osimage.MarkerFail, timeout)
	return Report(vm), end, err
}

// Report is what the demo OS printed on vm's console so far.
func Report(vm *lab.VM) osimage.Report {
	var r osimage.Report
	for _, l := range vm.Lines() {
		r.Add(l.Text)
	}
	return r
}

// waitEnd waits for a console line matching pattern, then for QEMU to exit.
func waitEnd(ctx context.Context, vm *lab.VM, pattern string, timeout time.Duration) (Ending, error) {
	var end Ending
	l, err := vm.WaitFor(ctx, pattern, timeout)
	if err != nil {
		return end, fmt.Errorf("%w\nlast console lines (%s):\n%s", err, vm.SerialLog(), vm.Tail(25))
	}
	end.Line = l
	select {
	case <-vm.Done():
		end.Off = time.Since(vm.Started())
		return end, nil
	case <-ctx.Done():
		return end, fmt.Errorf("rack: %s: waiting for power-off: %w", vm.Name(), ctx.Err())
	case <-time.After(offWait):
		return end, fmt.Errorf("rack: %s still running %v after %q:\n%s", vm.Name(), offWait, l.Text, vm.Tail(15))
	}
}
