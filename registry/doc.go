// Package registry owns rackboot's memory of the fleet: where each machine
// is in its install lifecycle (discovered, pending, installing, installed,
// failed), the history of its install attempts with the agent's log, and
// the one-time install tokens that let an agent speak for one machine and
// one attempt.
//
// The lifecycle itself is a set of pure functions over a HostRecord
// (lifecycle.go), tested transition by transition. Registry applies them
// atomically through a Store: Bolt, the embedded, crash-safe default on
// go.etcd.io/bbolt, Memory for tests, or registry/etcdstore, a Shared store
// several appliances use at once. Every backend proves itself with the
// conformance suite in registrytest (Run, and RunShared for Shared), and
// encodes records and logs with the helpers exported here for Store
// implementations (encode.go, logbatch.go).
//
// The package knows nothing of HTTP, iPXE or YAML: callers tell it whether a
// machine is in the profiles, and what version it is being given.
package registry
