//go:build !linux

package lab

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// HTTPClient needs Linux network namespaces; elsewhere every dial fails.
func (n *Net) HTTPClient(ns string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("lab: network namespaces need Linux")
	}}}
}

// DialContext needs Linux network namespaces; elsewhere every dial fails.
func (n *Net) DialContext(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("lab: network namespaces need Linux")
	}
}

// ListenPacket needs Linux network namespaces; elsewhere it fails.
func (n *Net) ListenPacket(ns, network, addr string) (net.PacketConn, error) {
	return nil, errors.New("lab: network namespaces need Linux")
}

// Listen needs Linux network namespaces; elsewhere it fails.
func (n *Net) Listen(ns, network, addr string) (net.Listener, error) {
	return nil, errors.New("lab: network namespaces need Linux")
}
