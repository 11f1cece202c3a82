package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// ack builds a DHCPACK for 192.0.2.50 with the given options.
func ack(t *testing.T, yiaddr string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.ParseIP(yiaddr)),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLeaseConfig(t *testing.T) {
	a := netip.MustParseAddr
	full := []dhcpv4.Modifier{
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.ParseIP("0.0.0.0"), net.ParseIP("192.0.2.1")),
		dhcpv4.WithDNS(net.ParseIP("192.0.2.53"), net.ParseIP("0.0.0.0")),
		dhcpv4.WithServerIP(net.ParseIP("192.0.2.2")),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("192.0.2.2"))),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
		dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x23, 0x28}), // 9000
		dhcpv4.WithOption(dhcpv4.OptDomainName("r1.example.com")),
		dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"r1.example.com", "example.com"}})),
	}
	for _, tt := range []struct {
		name   string
		yiaddr string
		mods   []dhcpv4.Modifier
		want   netConfig
		err    bool
	}{
		{
			name: "full", yiaddr: "192.0.2.50", mods: full,
			want: netConfig{Addr: netip.MustParsePrefix("192.0.2.50/24"), Gateway: a("192.0.2.1"), MTU: 9000,
				DNS: []netip.Addr{a("192.0.2.53")}, Search: []string{"r1.example.com", "example.com"},
				Server: a("192.0.2.2"), Lease: time.Hour},
		},
		{
			// What the lab's udhcpd sends: no router, no DNS.
			name: "address only", yiaddr: "10.1.2.3",
			mods: []dhcpv4.Modifier{dhcpv4.WithNetmask(net.CIDRMask(16, 32))},
			want: netConfig{Addr: netip.MustParsePrefix("10.1.2.3/16")},
		},
		{
			name: "no mask: classful", yiaddr: "172.16.5.4",
			mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptDomainName("example.com")),
				dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0, 68})}, // below 576: ignored
			want: netConfig{Addr: netip.MustParsePrefix("172.16.5.4/16"), Search: []string{"example.com"}},
		},
		{name: "no address (a proxyDHCP answer)", yiaddr: "0.0.0.0", err: true},
		{name: "broadcast address", yiaddr: "255.255.255.255", err: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := leaseConfig(ack(t, tt.yiaddr, tt.mods...))
			if tt.err {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y }),
				cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	c := netConfig{DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")}, Search: []string{"a.example", "example"}}
	want := "# written by rackboot-agent from its DHCP lease\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch a.example example\n"
	if got := string(resolvConf(c)); got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
}

func TestLeaseAttrs(t *testing.T) {
	got := leaseAttrs(netConfig{Addr: netip.MustParsePrefix("10.1.2.3/16")})
	if diff := cmp.Diff([]any{"ip", "10.1.2.3/16"}, got); diff != "" {
		t.Errorf("a bare lease (-want +got):\n%s", diff)
	}
}

func TestFindLink(t *testing.T) {
	sys := t.TempDir()
	for name, addr := range map[string]string{
		"lo":     "00:00:00:00:00:00\n",
		"eno1":   "52:54:00:00:01:01\n",
		"eno2":   "52:54:00:00:01:02\n",
		"wwan0":  "", // no address
		"bond0":  "not a mac\n",
		"ib0":    "80:00:00:48:fe:80:00:00:00:00:00:00:52:54:00:00:01:03\n", // InfiniBand, 20 bytes
		"broken": "-",
	} {
		os.MkdirAll(filepath.Join(sys, name), 0o755)
		if addr != "-" {
			os.WriteFile(filepath.Join(sys, name, "address"), []byte(addr), 0o644)
		}
	}
	for mac, want := range map[string]string{"52:54:00:00:01:02": "eno2", "52-54-00-00-01-01": "eno1", "52:54:00:00:01:03": ""} {
		hw, _ := net.ParseMAC(mac)
		got, err := findLink(sys, hw)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("findLink(%s) = %q, %v; want %q", mac, got, err, want)
		}
	}
	if got := linkNames(filepath.Join(sys, "none")); got == "" {
		t.Error("linkNames of a missing directory says nothing")
	}
}

// TestLeaseKeeper: renewals come at half the lease, a failure is retried
// at half the time left, and the keeper stops with its context.
func TestLeaseKeeper(t *testing.T) {
	start := time.Now()
	var at []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := &leaseKeeper{
		lease: 400 * time.Millisecond,
		addr:  netip.MustParseAddr("192.0.2.50"),
		floor: time.Millisecond,
		log:   slog.New(slog.DiscardHandler),
		renew: func(context.Context) (*dhcpv4.DHCPv4, error) {
			at = append(at, time.Since(start))
			switch len(at) {
			case 1: // at 200 ms: fails, 200 ms left
				return nil, errors.New("no answer")
			case 2: // at 300 ms: renewed; no option 51 means the same time again
				return ack(t, "192.0.2.50"), nil
			default: // at 500 ms
				cancel()
				return nil, ctx.Err()
			}
		},
	}
	done := make(chan struct{})
	go func() { k.run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the keeper did not stop with its context")
	}
	want := []time.Duration{200 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond}
	if len(at) != len(want) {
		t.Fatalf("renewals at %v, want %v", at, want)
	}
	for i := range want {
		if d := at[i] - want[i]; d < 0 || d > 150*time.Millisecond {
			t.Errorf("renewal %d at %v, want %v", i+1, at[i], want[i])
		}
	}
}

func TestLeaseKeeperNothingToKeep(t *testing.T) {
	for _, lease := range []time.Duration{0, infiniteLease} {
		k := &leaseKeeper{lease: lease, renew: func(context.Context) (*dhcpv4.DHCPv4, error) {
			t.Errorf("lease %v renewed", lease)
			return nil, nil
		}}
		k.run(context.Background()) // returns at once
	}
}
