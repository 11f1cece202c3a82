package lab

import "testing"

func TestEtherAddress(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"bridge", "5: br0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether e6:cd:15:33:cb:d6 brd ff:ff:ff:ff:ff:ff", "e6:cd:15:33:cb:d6"},
		{"no address", "1: lo: <LOOPBACK> mtu 65536\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00", ""},
		{"garbage", "link/ether nope brd", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hw, err := etherAddress(tt.line)
			got := ""
			if err == nil {
				got = hw.String()
			}
			if got != tt.want {
				t.Errorf("etherAddress = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
