package lab

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// udhcpdRecord encodes one struct dyn_lease as busybox 1.35 writes it.
func udhcpdRecord(expires uint32, ip string, mac []byte, host string) []byte {
	rec := make([]byte, 36)
	binary.BigEndian.PutUint32(rec[0:4], expires)
	a := netip.MustParseAddr(ip).As4()
	copy(rec[4:8], a[:])
	copy(rec[8:14], mac)
	copy(rec[14:34], host)
	return rec
}

func TestParseUdhcpdLeases(t *testing.T) {
	header := make([]byte, 8)
	binary.BigEndian.PutUint64(header, 1764000000)
	two := bytes.Join([][]byte{
		header,
		udhcpdRecord(3599, "192.168.77.108", []byte{0x52, 0x54, 0x00, 0x77, 0x00, 0x01}, ""),
		udhcpdRecord(3000, "192.168.77.109", []byte{0x52, 0x54, 0x00, 0x77, 0x00, 0x02}, "uefi-01"),
	}, nil)
	tests := []struct {
		name    string
		in      []byte
		want    map[string]netip.Addr
		wantErr string
	}{
		{"not written yet", nil, map[string]netip.Addr{}, ""},
		{"header only", header, map[string]netip.Addr{}, ""},
		{"two leases", two, map[string]netip.Addr{
			"52:54:00:77:00:01": netip.MustParseAddr("192.168.77.108"),
			"52:54:00:77:00:02": netip.MustParseAddr("192.168.77.109"),
		}, ""},
		{"truncated record", two[:len(two)-1], nil, "truncated"},
		{"truncated header", header[:5], nil, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUdhcpdLeases(bytes.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("leases (-want +got):\n%s", diff)
			}
		})
	}
}
