// Package metrics owns rackboot's Prometheus metrics: what the appliance
// answered (DHCP replies, TFTP transfers, HTTP requests, iPXE scripts), how
// installs went (started, finished by result, duration, bytes written), the
// fleet by state and by installed version, and whether the profiles load.
//
// Metrics keeps its own prometheus.Registry, never the global one, so that
// two appliances in one test process do not share counters. It imports none
// of rackboot's server packages: each hook takes plain values, and the
// command that wires the servers adapts their callbacks (dhcp.Server.OnReply,
// tftp.Server.OnTransfer, ipxe.Handler.OnScript, registry.Registry.Notify,
// profiles.Watcher.OnReload and OnError) with one-line closures.
//
// Every method is safe for concurrent use and quick enough for a packet
// path: a counter increment.
package metrics
