package dhcp

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

func TestNullRouterAdvertisement(t *testing.T) {
	b := nullRouterAdvertisement()
	m, err := icmp.ParseMessage(58, b) // 58: ICMPv6
	if err != nil {
		t.Fatal(err)
	}
	body, ok := m.Body.(*icmp.RawBody)
	if !ok || len(body.Data) != 12 {
		t.Fatalf("body = %#v, want the 12 bytes of an RA without options", m.Body)
	}
	type ra struct {
		Type                        ipv6.ICMPType
		Code                        int
		CurHopLimit, Flags          byte
		RouterLifetime              uint16
		ReachableTime, RetransTimer uint32
	}
	got := ra{
		Type: m.Type.(ipv6.ICMPType), Code: m.Code,
		CurHopLimit: body.Data[0], Flags: body.Data[1],
		RouterLifetime: binary.BigEndian.Uint16(body.Data[2:4]),
		ReachableTime:  binary.BigEndian.Uint32(body.Data[4:8]),
		RetransTimer:   binary.BigEndian.Uint32(body.Data[8:12]),
	}
	if diff := cmp.Diff(ra{Type: ipv6.ICMPTypeRouterAdvertisement}, got); diff != "" {
		t.Errorf("router advertisement (-want +got):\n%s", diff)
	}
}

func TestIsRouterSolicitation(t *testing.T) {
	rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
	withOption := append(append([]byte{}, rs...), 1, 1, 0x52, 0x54, 0, 0x77, 0, 1) // source link-layer address
	tests := []struct {
		name string
		b    []byte
		cm   *ipv6.ControlMessage
		want bool
	}{
		{"solicitation", rs, &ipv6.ControlMessage{HopLimit: 255}, true},
		{"with source link-layer option", withOption, &ipv6.ControlMessage{HopLimit: 255}, true},
		{"no control message", rs, nil, true},
		{"forwarded", rs, &ipv6.ControlMessage{HopLimit: 254}, false},
		{"nonzero code", []byte{133, 1, 0, 0, 0, 0, 0, 0}, nil, false},
		{"short", rs[:4], nil, false},
		{"advertisement", nullRouterAdvertisement(), nil, false},
		{"echo request", []byte{128, 0, 0, 0, 0, 0, 0, 0}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isRouterSolicitation(tt.b, tt.cm); got != tt.want {
				t.Errorf("isRouterSolicitation = %v, want %v", got, tt.want)
			}
		})
	}
}
