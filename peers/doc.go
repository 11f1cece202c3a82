// Package peers is the appliance's side of peer distribution
// (docs/DESIGN.md, "Peer distribution"): which installing agents hold
// which chunks of which published chunked image, and to which of them a
// chunk request is sent instead of being served by the appliance.
//
// It speaks no HTTP and knows no host states: the agent API hands it
// the agents' holdings reports (Coordinator.Hold) and the artifacts
// handler asks it where to redirect a chunk request (Coordinator.Pick),
// both through adapters in cmd/rackboot. It imports only the leaves
// agentapi (the report's wire form) and imaging/chunkstore (the index).
package peers
