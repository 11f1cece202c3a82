// Package agentapi is the contract between the appliance and its installer
// agent, defined once: the plan the appliance serves (which disk, which
// partitions with which file systems, which image with its digest and
// sizes, which config-drive files), the reports the agent sends back
// (progress in typed phases, log lines, done, failed), the header and URL
// paths they travel on, the kernel command-line parameters that start the
// agent, and the one cloud-init renderer whose files production writes.
//
// It is a leaf: it imports the standard library, the YAML encoder and the
// image decompressors (what a format name of the plan means), never
// go-diskfs, an HTTP server, the registry or the profiles. The
// appliance side (api, profiles, the render command) and the agent side
// (imaging, cmd/rackboot-agent) both import it, so the two cannot drift
// apart, and the daemon does not link the disk writer to speak it.
//
// Every value here travels as JSON; the field tags are the wire format,
// documented in docs/DESIGN.md ("The agent contract").
package agentapi
