package dhcp

import (
	"errors"
	"net"

	"golang.org/x/sys/unix"
)

// setBuffers asks for receive and send buffers of the given sizes in
// bytes; a negative size leaves that buffer alone. The *FORCE options
// exceed net.core.rmem_max and wmem_max but need CAP_NET_ADMIN; without it
// the plain options apply, which the kernel caps at those limits without
// an error.
func setBuffers(c *net.UDPConn, read, write int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var errs []error
	err = rc.Control(func(fd uintptr) {
		if read >= 0 {
			errs = append(errs, setBuffer(int(fd), unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, read))
		}
		if write >= 0 {
			errs = append(errs, setBuffer(int(fd), unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, write))
		}
	})
	return errors.Join(append(errs, err)...)
}

func setBuffer(fd, force, plain, size int) error {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) == nil {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
}

// socketBuffers reads back SO_RCVBUF and SO_SNDBUF.
func socketBuffers(c *net.UDPConn) (read, write int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var rerr, werr error
	err = rc.Control(func(fd uintptr) {
		read, rerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		write, werr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if err := errors.Join(err, rerr, werr); err != nil {
		return 0, 0, err
	}
	return read, write, nil
}
