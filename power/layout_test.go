package power_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayout: power is a leaf of rackboot (it imports none of its
// packages; the daemon hands it resolved Targets), and the test doubles
// and go-ipmi's BMC server are not linked into it.
func TestLayout(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is needed to list dependencies")
	}
	const mod = "github.com/rackboot/rackboot/"
	out, err := exec.Command("go", "list", "-deps", mod+"power").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, d := range strings.Fields(string(out)) {
		switch {
		case d == mod+"power":
		case strings.HasPrefix(d, mod):
			t.Errorf("power imports %s", d)
		case strings.HasPrefix(d, "github.com/bougou/go-ipmi/pkg/server"), strings.HasPrefix(d, "github.com/bougou/go-ipmi/pkg/bmc"):
			t.Errorf("power links the IPMI server %s", d)
		}
	}
}
