//go:build !linux

package dhcp

import (
	"errors"
	"fmt"
	"net"
)

// setBuffers asks for receive and send buffers of the given sizes in
// bytes; a negative size leaves that buffer alone.
func setBuffers(c *net.UDPConn, read, write int) error {
	var errs []error
	if read >= 0 {
		errs = append(errs, c.SetReadBuffer(read))
	}
	if write >= 0 {
		errs = append(errs, c.SetWriteBuffer(write))
	}
	return errors.Join(errs...)
}

// socketBuffers is not implemented outside Linux.
func socketBuffers(*net.UDPConn) (read, write int, err error) {
	return 0, 0, fmt.Errorf("dhcp: reading socket buffer sizes: %w", errors.ErrUnsupported)
}
