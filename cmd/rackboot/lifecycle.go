package main

import (
	"context"

	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// lifecycle makes the iPXE per-machine script follow the registry: it is
// ipxe.Handler.Lifecycle. Every script request is a Registry.Boot.
type lifecycle struct {
	Registry *registry.Registry
	// Discovery records machines missing from the profiles as discovered;
	// use the same setting as ipxe.Handler.Discovery.
	Discovery bool
}

// Boot implements ipxe.Lifecycle.
func (l lifecycle) Boot(ctx context.Context, f ipxe.Facts, host *profiles.Host) (ipxe.Step, error) {
	var hostname string
	if host != nil {
		hostname = host.Hostname
	}
	d, err := l.Registry.Boot(ctx, f.MAC, hostname, host != nil, l.Discovery)
	if err != nil {
		return ipxe.Step{}, err
	}
	switch d.Kind {
	case registry.BootInstall:
		return ipxe.Step{Kind: ipxe.StepInstall, Token: d.Token}, nil
	case registry.BootLocal:
		return ipxe.Step{Kind: ipxe.StepLocal}, nil
	case registry.BootFailed:
		return ipxe.Step{Kind: ipxe.StepFailed, Message: d.Message}, nil
	case registry.BootHeld:
		return ipxe.Step{Kind: ipxe.StepHeld, Message: d.Message}, nil
	}
	return ipxe.Step{Kind: ipxe.StepDefault}, nil
}
