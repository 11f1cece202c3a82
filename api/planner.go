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
	// Plan returns the plan that installs version v on host. installed
	// is the catalog's entry of the version the registry says the host
	// runs (its last successful install), nil when none or no longer in
	// the catalog: a chunked image reuses what it shares with it
	// (agentapi.Seed). base is the URL the agent reaches the appliance
	// at ("http://192.0.2.1:8080"), for artifacts given as paths.
	Plan(host *profiles.Host, v, installed *profiles.Version, base string) (agentapi.Plan, error)
}
