//go:build !linux

package dhcp

import "golang.org/x/net/ipv4"

// ifIndexOf returns the interface index in the control messages oob, or 0
// if there is none.
func ifIndexOf(oob []byte) int {
	var cm ipv4.ControlMessage
	if len(oob) == 0 || cm.Parse(oob) != nil {
		return 0
	}
	return cm.IfIndex
}
