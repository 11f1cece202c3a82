package main

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

const testToken = "4f1d0c5e8a7b6c3d2e1f0a9b8c7d6e5f4f1d0c5e8a7b6c3d2e1f0a9b8c7d6e5f"

// ipxeCmdline is what ipxe/testdata/installer-token.ipxe puts on the
// kernel command line, with iPXE's own initrd= first.
const ipxeCmdline = "initrd=initrd.img rackboot.server=http://192.0.2.1:8080 rackboot.mac=52:54:00:00:01:01 rackboot.token=" + testToken + " console=ttyS0,115200 quiet\n"

func TestParseCmdline(t *testing.T) {
	type want struct {
		Server, MAC, Token, After string
	}
	for _, tt := range []struct {
		name    string
		cmdline string
		want    want
		errs    []string // substrings of the error; nil: no error
	}{
		{
			name:    "ipxe",
			cmdline: ipxeCmdline,
			want:    want{"http://192.0.2.1:8080", "52:54:00:00:01:01", testToken, agentapi.AfterReboot},
		},
		{
			name:    "poweroff and trailing slash",
			cmdline: "rackboot.server=https://boot.example.com/ rackboot.mac=52-54-00-00-01-01 rackboot.token=t rackboot.after=poweroff",
			want:    want{"https://boot.example.com", "52:54:00:00:01:01", "t", agentapi.AfterPoweroff},
		},
		{
			name:    "quoted values and the last one wins",
			cmdline: `rackboot.server=http://a rackboot.server="http://192.0.2.9:80" "rackboot.mac=52:54:00:00:01:02" rackboot.token=x`,
			want:    want{"http://192.0.2.9:80", "52:54:00:00:01:02", "x", agentapi.AfterReboot},
		},
		{
			name:    "init arguments after -- are not parameters",
			cmdline: "rackboot.server=http://192.0.2.1 rackboot.mac=52:54:00:00:01:01 rackboot.token=t -- rackboot.after=poweroff",
			want:    want{"http://192.0.2.1", "52:54:00:00:01:01", "t", agentapi.AfterReboot},
		},
		{
			name:    "several appliances, the serving one first",
			cmdline: "rackboot.server=https://192.0.2.1:8443,https://192.0.2.2:8443/,http://[2001:db8::3]:8080 rackboot.mac=52:54:00:00:01:01 rackboot.token=t",
			want:    want{"https://192.0.2.1:8443,https://192.0.2.2:8443,http://[2001:db8::3]:8080", "52:54:00:00:01:01", "t", agentapi.AfterReboot},
		},
		{
			name:    "one of several invalid",
			cmdline: "rackboot.server=https://192.0.2.1:8443,ftp://192.0.2.2,https://192.0.2.3/api rackboot.mac=52:54:00:00:01:01 rackboot.token=t",
			errs:    []string{`rackboot.server="ftp://192.0.2.2"`, `rackboot.server="https://192.0.2.3/api": want https://HOST[:PORT] without path`},
		},
		{
			name:    "an empty entry in the list",
			cmdline: "rackboot.server=https://192.0.2.1:8443,,https://192.0.2.2:8443 rackboot.mac=52:54:00:00:01:01 rackboot.token=t",
			errs:    []string{`rackboot.server="": want https://HOST[:PORT]`},
		},
		{
			name:    "nothing",
			cmdline: "console=ttyS0 quiet",
			errs:    []string{"rackboot.server= missing", "rackboot.mac= missing", "rackboot.token= missing"},
		},
		{
			name:    "bad values",
			cmdline: "rackboot.server=ftp://x rackboot.mac=52:54:00 rackboot.token=t rackboot.after=halt",
			errs:    []string{`rackboot.server="ftp://x"`, `rackboot.mac="52:54:00"`, `rackboot.after="halt"`},
		},
		{
			name:    "server with a path",
			cmdline: "rackboot.server=http://192.0.2.1/api rackboot.mac=52:54:00:00:01:01 rackboot.token=t",
			errs:    []string{"without path"},
		},
		{
			name:    "token with a control character",
			cmdline: "rackboot.server=http://192.0.2.1 rackboot.mac=52:54:00:00:01:01 \"rackboot.token=a\x01b\"",
			errs:    []string{"not a printable ASCII token"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseCmdline(tt.cmdline)
			if tt.errs != nil {
				if err == nil {
					t.Fatalf("parseCmdline accepted %q: %+v", tt.cmdline, cfg)
				}
				for _, e := range tt.errs {
					if !strings.Contains(err.Error(), e) {
						t.Errorf("error %q lacks %q", err, e)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{servers(cfg), cfg.MAC.String(), cfg.Token, cfg.After}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// servers is cfg's appliances as they were written, comma-separated.
func servers(cfg config) string {
	s := make([]string, len(cfg.Servers))
	for i, u := range cfg.Servers {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

func TestSplitCmdline(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  a  b\tc\n", []string{"a", "b", "c"}},
		{`a="b c" d`, []string{"a=b c", "d"}},
		{`"a=b c" d`, []string{"a=b c", "d"}},
		{`a="" b`, []string{"a=", "b"}},
		{`a="unterminated b`, []string{"a=unterminated b"}},
	} {
		t.Run(tt.in, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, splitCmdline(tt.in)); diff != "" {
				t.Errorf("splitCmdline(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestRedactCmdline(t *testing.T) {
	got := redactCmdline(ipxeCmdline)
	want := "initrd=initrd.img rackboot.server=http://192.0.2.1:8080 rackboot.mac=52:54:00:00:01:01 rackboot.token=REDACTED console=ttyS0,115200 quiet"
	if got != want {
		t.Errorf("redactCmdline:\n got %s\nwant %s", got, want)
	}
}

// FuzzCmdline: the command line is the agent's first untrusted input
// (anyone who edits the boot entry writes it). Parsing never panics, an
// accepted config is usable, and the token never survives redaction.
func FuzzCmdline(f *testing.F) {
	f.Add(ipxeCmdline)
	f.Add(`rackboot.server="http://a b" rackboot.mac=x "rackboot.token=`)
	f.Add("rackboot.token=secret rackboot.token=\"secret two\" -- rackboot.token=x")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := parseCmdline(s)
		if err == nil {
			if len(cfg.Servers) == 0 || slices.ContainsFunc(cfg.Servers, func(u *url.URL) bool { return u.Host == "" }) || len(cfg.MAC) != 6 || cfg.Token == "" || !printableToken(cfg.Token) {
				t.Fatalf("accepted an unusable config from %q: %+v", s, cfg)
			}
			if cfg.After != agentapi.AfterReboot && cfg.After != agentapi.AfterPoweroff {
				t.Fatalf("after %q", cfg.After)
			}
		}
		for _, arg := range splitCmdline(redactCmdline(s)) {
			if v, ok := strings.CutPrefix(arg, agentapi.ParamToken+"="); ok && v != "REDACTED" {
				t.Fatalf("redactCmdline(%q) kept a token: %q", s, arg)
			}
		}
	})
}
