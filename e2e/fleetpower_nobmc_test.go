//go:build e2e && !powertest

package e2e

import "github.com/rackboot/rackboot/e2e/lab"

// haveRedfishDouble: power/powertest is not on this branch yet; the
// tests that need its RedfishBMC skip. Once it is, delete this file and
// the "&& powertest" of fleetpower_bmc_test.go.
const haveRedfishDouble = false

func newRedfishDouble(string, string, map[string]*lab.AgentMachine) redfishDouble {
	return redfishDouble{}
}
