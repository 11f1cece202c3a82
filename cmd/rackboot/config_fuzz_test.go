package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"
)

// FuzzConfig reads a fuzzed --config file. What it accepts passes check,
// survives a round trip (encoded as YAML and read again: the same
// settings), and a flag given beside it still wins.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"profiles: /etc/rackboot/profiles\nhttp-port: 8081\ninterfaces: [eth1, eth2]\ndiscovery: true\n",
		"advertise: 192.0.2.1\nlog-format: json\nmax-attempts: 5\ntftp-max-per-client: 0\n",
		"http-port: 70000\n", "bogus: 1\n", "interfaces: eth0\n", "---\n---\nhttp-port: 1\n",
		"a: &a [*a]\n", "max-attempts: 0x10\nipv6-ra: yes\n", "",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	file := filepath.Join(dir, "config.yaml")
	again := filepath.Join(dir, "again.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 2048 {
			return
		}
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := parseServeConfig([]string{"--config", file}, io.Discard)
		if err != nil {
			return
		}
		if err := c.check(); err != nil {
			t.Fatalf("accepted %q fails check: %v", b, err)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("accepted %q does not encode: %v", b, err)
		}
		if err := os.WriteFile(again, out, 0o600); err != nil {
			t.Fatal(err)
		}
		c2, err := parseServeConfig([]string{"--config", again}, io.Discard)
		if err != nil {
			t.Fatalf("%q accepted, its encoding %q refused: %v", b, out, err)
		}
		if diff := cmp.Diff(c, c2, cmp.AllowUnexported(serveConfig{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", b, diff)
		}
		c3, err := parseServeConfig([]string{"--config", file, "--http-port", "1234"}, io.Discard)
		if err != nil || c3.HTTPPort != 1234 {
			t.Fatalf("the flag beside %q: port %d, %v", b, c3.HTTPPort, err)
		}
	})
}
