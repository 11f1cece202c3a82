//go:build !linux

package lab

import "errors"

// Capture needs Linux network namespaces and packet sockets.
type Capture struct{}

// CaptureStats is what a Capture saw.
type CaptureStats struct {
	Frames, Bytes uint64
	Drops         uint32
	Seen          map[string]int
}

// Capture needs Linux; elsewhere it fails.
func (n *Net) Capture(ns, ifname string, needles ...string) (*Capture, error) {
	return nil, errors.New("lab: packet capture needs Linux")
}

// Seen is 0 without Linux.
func (c *Capture) Seen(string) int { return 0 }

// Close returns nothing without Linux.
func (c *Capture) Close() (CaptureStats, error) { return CaptureStats{}, nil }
