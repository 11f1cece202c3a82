package api

import (
	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/profiles"
)

// Planner turns a host of the profiles into the plan its agent executes.
// The daemon's planner (cmd/rackboot) completes the profiles' plan with
// the image's URL and sizes; `rackboot render` prints what it returns.
// Implementations must be safe for concurrent use.
type Planner interface {
	// Plan returns the plan that installs version v on host. base is the
	// URL the agent reaches the appliance at ("http://192.0.2.1:8080"),
	// for artifacts given as paths.
	Plan(host *profiles.Host, v *profiles.Version, base string) (agentapi.Plan, error)
}
