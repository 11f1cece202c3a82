// Package rollout owns staged rollouts: moving a fixed selection of
// machines to one catalog version in waves, a canary wave first, each wave
// reinstalled through the registry and power-cycled through its BMCs,
// watched until every host installed or failed, and judged before the
// next one starts. A wave with more failed hosts than the spec tolerates
// halts the rollout by itself; an admin may pause, resume (retrying a
// halted wave's failed hosts) or abort it.
//
// Plan is the pure part: a Spec to its waves, with the validation. Engine
// is the rest: it keeps every rollout in memory, mirrored to a store
// through Env.Save after every change and before acting on it, so that a
// rollout survives a restart of the daemon and no machine is power-cycled
// twice for one wave (a host saved as cycling is, after a restart,
// watched and never cycled again).
//
// The package speaks no HTTP and knows no BMC library: it drives an Env
// (reinstall, power cycle, host record, load, save) that cmd/rackboot
// implements over the registry, the power package and the store. It
// imports only registry, for the record and attempt types it reads.
package rollout
