package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestServeConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rackboot.yaml")
	if err := os.WriteFile(file, []byte("profiles: /srv/profiles\ninterfaces: [eth1, eth2]\nhttp-port: 9090\nhttps-port: 9443\ntls-cert: /etc/rackboot/tls.pem\ntls-key: /etc/rackboot/tls.key\ndiscovery: true\ndiscovered-ttl: 2h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want func(*serveConfig)
	}{
		{"defaults", nil, func(*serveConfig) {}},
		{"flags", []string{"--interface", "br0", "--interface", "br1", "--dhcp-port", "6767", "--efi-file", "ipxe.efi",
			"--http-max-conns", "10000", "--http-max-per-client", "0", "--tftp-max-per-client", "0", "--max-discovered", "64", "--discovered-ttl", "90m",
			"--trust-routed", "10.20.0.0/16,127.0.0.0/8", "--trust-routed", "192.0.2.0/24",
			"--peers", "subnet", "--peer-port", "9000", "--peer-linger", "90s"}, func(c *serveConfig) {
			c.Peers, c.PeerPort, c.PeerLinger = peersSubnet, 9000, 90*time.Second
			c.HTTPMaxConns, c.HTTPMaxPerClient, c.TFTPMaxPerClient = 10000, 0, 0
			c.TrustRouted = []string{"10.20.0.0/16,127.0.0.0/8", "192.0.2.0/24"}
			c.MaxDiscovered, c.DiscoveredTTL = 64, 90*time.Minute
			c.Interfaces = []string{"br0", "br1"}
			c.DHCPPort = 6767
			c.EFIFile = "ipxe.efi"
		}},
		{"file", []string{"--config", file}, func(c *serveConfig) {
			c.Profiles = "/srv/profiles"
			c.Interfaces = []string{"eth1", "eth2"}
			c.HTTPPort, c.HTTPSPort = 9090, 9443
			c.TLSCert, c.TLSKey = "/etc/rackboot/tls.pem", "/etc/rackboot/tls.key"
			c.DiscoveredTTL = 2 * time.Hour
			c.Discovery = true
		}},
		{"flags win over the file", []string{"--config", file, "--interface", "br0", "--http-port", "8081", "--https-port", "8444"}, func(c *serveConfig) {
			c.Profiles = "/srv/profiles"
			c.Interfaces = []string{"br0"}
			c.HTTPPort, c.HTTPSPort = 8081, 8444
			c.TLSCert, c.TLSKey = "/etc/rackboot/tls.pem", "/etc/rackboot/tls.key"
			c.DiscoveredTTL = 2 * time.Hour
			c.Discovery = true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseServeConfig(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := defaultServeConfig()
			tc.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("profiles: /x\nhttp_port: 80\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown key in file", []string{"--config", bad}, "field http_port not found"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, "no such file"},
		{"bad port", []string{"--http-port", "70000"}, "http-port 70000: not a port"},
		{"bad advertise", []string{"--advertise", "example.com"}, "not an IPv4 address"},
		{"bad log format", []string{"--log-format", "xml"}, "log-format"},
		{"negative connection cap", []string{"--http-max-conns", "-1"}, "http-max-conns -1"},
		{"negative tftp cap", []string{"--tftp-max-per-client", "-1"}, "tftp-max-per-client -1"},
		{"negative http per-client cap", []string{"--http-max-per-client", "-1"}, "http-max-per-client -1"},
		{"bad trusted prefix", []string{"--trust-routed", "10.20.0.0"}, `trust-routed "10.20.0.0": want a prefix`},
		{"no discovered records", []string{"--max-discovered", "0"}, "max-discovered 0"},
		{"short discovered ttl", []string{"--discovered-ttl", "1s"}, "discovered-ttl 1s"},
		{"stray argument", []string{"extra"}, "unexpected argument"},
		{"no https port", []string{"--https-port", "0"}, "https-port 0: the admin and agent APIs need an HTTPS port"},
		{"https on the http port", []string{"--https-port", "8080"}, "https-port 8080: the same as http-port"},
		{"cert without key", []string{"--tls-cert", "/etc/x.pem"}, "tls-cert and tls-key go together"},
		{"key without cert", []string{"--tls-key", "/etc/x.key"}, "tls-cert and tls-key go together"},
		{"bad peers mode", []string{"--peers", "on"}, `peers "on": want off, subnet or all`},
		{"bad peer port", []string{"--peers", "all", "--peer-port", "0"}, "peer-port 0: not a port"},
		{"negative linger", []string{"--peer-linger", "-1s"}, "peer-linger -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServeConfig(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
