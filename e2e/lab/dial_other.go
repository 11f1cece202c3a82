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
