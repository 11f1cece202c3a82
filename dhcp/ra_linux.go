package dhcp

import "syscall"

// bindToDevice returns a net.ListenConfig Control function that binds the
// socket to the device ifname (SO_BINDTODEVICE), so that it receives and
// sends on that interface only.
func bindToDevice(ifname string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}
}
