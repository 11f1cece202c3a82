package rack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
)

// e1000ROM is the iPXE option ROM QEMU gives an e1000 NIC (ipxe-qemu):
// the only network boot the e1000 machine has under OVMF.
const e1000ROM = "/usr/lib/ipxe/qemu/efi-e1000.rom"

// CheckHost returns one error per thing this machine lacks to run the
// example rack (nil when nothing is missing): what lab.CheckHost and
// osimage.CheckHost ask for, Go to build rackboot, and the e1000's ROM.
func CheckHost() []error {
	return append(checkLab(), leaves(osimage.CheckHost(osimage.Config{}))...)
}

// CheckDebianHost is CheckHost for the Debian rack: what it asks for
// besides the busybox images' tools, and what osimage.CheckDebianHost
// asks for to build the Debian image.
func CheckDebianHost() []error {
	errs := checkLab()
	// Both checkers say what they share (not root, a missing command),
	// each with its own reason; the list says it once.
	for _, e := range leaves(osimage.CheckDebianHost()) {
		if !slices.ContainsFunc(errs, func(have error) bool { return problem(have) == problem(e) }) {
			errs = append(errs, e)
		}
	}
	return errs
}

// problem is what a host check's error says is wrong, without the reason
// that follows: "not root" of "not root (mmdebstrap …)" and of "not root:
// namespaces …".
func problem(err error) string {
	s := err.Error()
	if i := strings.IndexAny(s, ":("); i > 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// checkLab is what every rack needs: the lab, Go and the e1000's ROM.
func checkLab() []error {
	errs := leaves(lab.CheckHost())
	if _, err := exec.LookPath("go"); err != nil {
		errs = append(errs, errors.New("command go missing (rackboot is built from this checkout; go.mod names the version)"))
	}
	if _, err := os.Stat(e1000ROM); err != nil {
		errs = append(errs, fmt.Errorf("%s missing (package ipxe-qemu)", e1000ROM))
	}
	return errs
}

// leaves flattens a checker's error, "prefix: " wrapping a join of one
// error per missing thing, into those errors.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	inner := errors.Unwrap(err)
	if inner == nil {
		return []error{err}
	}
	if j, ok := inner.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
