//go:build !linux

package dhcp

import (
	"errors"
	"syscall"
)

// bindToDevice fails: binding a socket to a device is Linux's
// SO_BINDTODEVICE.
func bindToDevice(string) func(network, address string, c syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error {
		return errors.New("binding a socket to an interface needs Linux")
	}
}
