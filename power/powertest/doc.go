// Package powertest provides BMC doubles for tests of code that drives
// machines' power, as net/http/httptest does for HTTP: RedfishBMC (an
// http.Handler), IPMIBMC (go-ipmi's reference BMC in the process, on a UDP
// socket), FakeMachine (the in-memory Machine they control), and sockets
// that fail the ways real BMCs fail (HangTCP, HangUDP, ClosedTCP,
// ClosedUDP).
//
// The doubles record what they did to their machines (Log: system,
// action, whether a network boot went with it, time), which is what tests
// of staggered fleet operations assert on.
package powertest
