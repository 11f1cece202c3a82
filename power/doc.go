// Package power owns rackboot's hand on a machine's power switch: reading
// and setting its power state and asking for one network boot through its
// BMC, over IPMI (IPMI 2.0 RMCP+, "lanplus", with go-ipmi) or Redfish (the
// ComputerSystem resource, with gofish). No ipmitool is run.
//
// New turns a Target (protocol, address, credentials) into a Controller:
// Status, On, Off, Cycle and NetBootOnce, each one operation with a fresh
// BMC session that is always closed (BMCs have few session slots), bounded
// by Config.Timeout and the caller's context. On, Off and Cycle read the
// state first, because real BMCs refuse or misbehave otherwise (Redfish
// 409 for On when on, IPMI 0xD5 for a cycle when off): On when on and Off
// when off do nothing, Cycle when off powers on.
//
// Do is one action on one machine as an operator means it: the network
// boot request first, the power action, then Status polled until the
// machine reads the state asked for, with whole-operation retries for
// timeouts and unreachable BMCs, never for refused credentials. Run is Do
// over a fleet: bounded concurrency, a stagger between consecutive power
// actions (inrush current), and a broken BMC costs its own slot and
// deadline, nothing more.
//
// Every error is an *Error whose Kind (auth, unreachable, timeout, tls, bmc,
// config) says what the operator has to fix, and whose text has been
// through Redact with the password. The measurements behind the choices
// (library quirks, timings, error texts) are in docs/bmc-groundwork.md.
//
// The package knows nothing of the registry or of where credentials are
// kept: the daemon resolves a machine's Target and hands it in.
// powertest holds the BMC doubles its tests and the e2e tests use.
package power
