package lab

import "net"

// Listen opens a stream listener inside namespace ns, bound to addr
// ("ip:port", port 0 for any), the way ListenPacket opens UDP sockets: a
// test double (a BMC) the server under test reaches from its namespace.
//
// A stop-gap of the agent lab's tests (e2e/fleetpower_test.go) until the
// Net.Listen of the BMC lab lands; drop this file then.
func (n *Net) Listen(ns, network, addr string) (net.Listener, error) {
	return onThreadIn(ns, func() (net.Listener, error) { return net.Listen(network, addr) })
}
