package dhcp

import (
	"testing"

	"golang.org/x/net/ipv6"
)

// FuzzRouterSolicitation holds isRouterSolicitation to RFC 4861 section
// 6.1.1: it accepts exactly the messages of type 133, code 0, at least 8
// bytes long, with hop limit 255 when the kernel reported one.
func FuzzRouterSolicitation(f *testing.F) {
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0}, 255, true)
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 82, 84, 0, 119, 0, 1}, 64, true)
	f.Add([]byte{134, 0, 0, 0, 0, 0, 0, 0}, 255, false)
	f.Add([]byte{133, 1}, 255, false)
	f.Fuzz(func(t *testing.T, b []byte, hop int, reported bool) {
		var cm *ipv6.ControlMessage
		if reported {
			cm = &ipv6.ControlMessage{HopLimit: hop}
		}
		want := len(b) >= 8 && b[0] == 133 && b[1] == 0 && (!reported || hop == 255)
		if got := isRouterSolicitation(b, cm); got != want {
			t.Fatalf("isRouterSolicitation(% x, hop %d reported %v) = %v, want %v", b, hop, reported, got, want)
		}
	})
}
