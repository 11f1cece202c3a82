// Package appliance holds the daemon's registry-to-iPXE adapter
// (cmd/rackboot/lifecycle.go) for the bench harnesses, which serve scripts
// in-process and cannot import a main package.
package appliance

import (
	"context"

	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// Lifecycle adapts a registry to ipxe.Lifecycle: every script request is
// a Registry.Boot, discovery off.
type Lifecycle struct{ Reg *registry.Registry }

// steps maps the registry's decisions to the script's steps.
var steps = map[registry.BootKind]string{
	registry.BootInstall: ipxe.StepInstall,
	registry.BootLocal:   ipxe.StepLocal,
	registry.BootFailed:  ipxe.StepFailed,
}

// Boot implements ipxe.Lifecycle.
func (l Lifecycle) Boot(ctx context.Context, f ipxe.Facts, host *profiles.Host) (ipxe.Step, error) {
	name := ""
	if host != nil {
		name = host.Hostname
	}
	d, err := l.Reg.Boot(ctx, f.MAC, name, host != nil, false)
	if err != nil {
		return ipxe.Step{}, err
	}
	return ipxe.Step{Kind: steps[d.Kind], Token: d.Token, Message: d.Message}, nil
}
