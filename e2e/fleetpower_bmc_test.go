//go:build e2e && powertest

package e2e

import (
	"fmt"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/power/powertest"
)

// haveRedfishDouble: power/powertest's RedfishBMC is built in.
const haveRedfishDouble = true

// An AgentMachine is a machine a BMC double drives.
var _ powertest.Machine = (*lab.AgentMachine)(nil)

// newRedfishDouble is a Redfish BMC double (powertest.RedfishBMC) with
// the machines as its systems, by system id.
func newRedfishDouble(user, password string, systems map[string]*lab.AgentMachine) redfishDouble {
	ms := map[string]powertest.Machine{}
	for id, m := range systems {
		ms[id] = m
	}
	b := &powertest.RedfishBMC{User: user, Password: password, Systems: ms}
	return redfishDouble{Handler: b, log: func() string { return fmt.Sprintf("%+v", b.Log()) }}
}
