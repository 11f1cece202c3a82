//go:build e2e

package e2e

import (
	"os"
	"testing"

	"github.com/rackboot/rackboot/e2e/lab"
)

// TestMain lets ipmi_sim run this test binary as its chassis_control
// program (lab.StartIPMISim): "e2e.test lab-chassis DIR get power" and the
// like operate the BMC machine in DIR and exit, without running any test.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == lab.ChassisArg {
		os.Exit(lab.ChassisMain(os.Args[2:], os.Stdout))
	}
	os.Exit(m.Run())
}
