package ipxe

import (
	"net"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/profiles"
)

var outcomes = []string{OutcomeInstaller, OutcomeDiscovery, OutcomeLocal, OutcomeFailed, OutcomeHeld, OutcomeStateError, OutcomeUnknown, OutcomeNoInstaller, "bogus"}

// unsafeOutside reports the first byte of a script, after its "#!ipxe"
// line, that iPXE's command language gives a meaning beyond a literal word
// or that no rendered script needs: "$", braces, ";", "&", "#", quotes,
// backslash, tab, CR, other control bytes and non-ASCII. "|" only as "||".
func unsafeOutside(s string) (byte, bool) {
	body, _ := strings.CutPrefix(s, "#!ipxe\n")
	body = strings.ReplaceAll(body, " || goto ", " ")
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\n' || c == ' ' || safeByte(c) || strings.IndexByte("()[]", c) >= 0 {
			continue
		}
		if c == ':' || c == '_' {
			continue
		}
		return c, true
	}
	return 0, false
}

// FuzzRender renders every outcome with fuzzed facts, base URL, installer,
// hostname, token and message: a script Render returns passes checkScript
// and holds no unsafe byte, whatever the values held; a refused one is
// replaced by refusal, which passes too.
func FuzzRender(f *testing.F) {
	f.Add(uint8(0), "http://192.0.2.1:8080", "x86_64", "efi", "8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f60", "vmlinuz", "initrd.img", "console=ttyS0 rackboot.after=poweroff", "r1-n01", "0123456789abcdef0123", "")
	f.Add(uint8(3), "http://[2001:db8::1]:8080", "i386", "pcbios", "", "http://x/k", "", "", "", "", "install failed: $(reboot) ; exit\n#")
	f.Add(uint8(1), "http://h/${x}", "arm64", "efi", "", "k ${n}", "i\nkernel x", "a;b rackboot.token=1", "bad_host", "short", "\x00\xff")
	f.Add(uint8(2), "https://a.example:1/p/", "", "", "x", "../k", "a/../b", "rackboot.server=evil", "h", "", "")
	f.Fuzz(func(t *testing.T, outcome uint8, base, arch, platform, uuid, kernel, initrd, args, hostname, token, message string) {
		if len(base+arch+platform+uuid+kernel+initrd+args+hostname+token+message) > 2048 {
			return
		}
		facts := Facts{MAC: net.HardwareAddr{0x52, 0x54, 0, 0x77, 0, 1}, Arch: arch, Platform: platform, UUID: uuid}
		d := Decision{
			Outcome:   outcomes[int(outcome)%len(outcomes)],
			Host:      &profiles.Host{Hostname: hostname},
			Installer: &profiles.Installer{Kernel: kernel, Initrd: initrd, Cmdline: args},
			Token:     token,
			Message:   message,
		}
		if outcome&0x80 != 0 {
			d.Host = nil
		}
		// The API URL and the CA path take fuzzed values too, without
		// changing the corpus's signature.
		a := Appliance{Base: base, API: strings.Replace(base, "http:", "https:", 1)}
		if outcome&0x40 != 0 {
			a.CA = "/" + initrd
		}
		s, err := Render(a, facts, d)
		if err != nil {
			s = refusal(facts)
		}
		if err := checkScript(s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
		if c, bad := unsafeOutside(s); bad {
			t.Fatalf("byte %q in\n%s", c, s)
		}
	})
}

// FuzzCheckScript: checkScript never panics, and a script it accepts has
// no unsafe byte and only allowed commands.
func FuzzCheckScript(f *testing.F) {
	for _, s := range []string{
		"#!ipxe\necho hi\nkernel http://x/k || goto failed\nboot || goto failed\n:failed\necho no\nsleep 5\nexit 1\n",
		"#!ipxe\necho ${x}\n", "#!ipxe\nchain http://x\n", "#!ipxe\ngoto a\n", "#!ipxe\n:a\ngoto a\n",
		"#!ipxe\necho a ; reboot\n", "#!ipxe\necho  a\n", "#!ipxe\nsanboot --no-describe --drive 0x80\n", "#!ipxe\n\n", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 2048 || checkScript(s) != nil {
			return
		}
		if c, bad := unsafeOutside(s); bad {
			t.Fatalf("accepted with byte %q:\n%s", c, s)
		}
		body := strings.TrimSuffix(strings.TrimPrefix(s, "#!ipxe\n"), "\n")
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, ":") {
				continue
			}
			if cmd, _, _ := strings.Cut(l, " "); !scriptCommand(cmd) {
				t.Fatalf("accepted command %q:\n%s", cmd, s)
			}
		}
	})
}
