package profiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestParseMAC(t *testing.T) {
	for _, in := range []string{"52:54:00:AA:bb:0c", "52-54-00-aa-bb-0c", "5254.00aa.bb0c", "525400aabb0c", " 52:54:00:aa:bb:0c "} {
		t.Run(in, func(t *testing.T) {
			hw, err := ParseMAC(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := MACKey(hw); got != "52:54:00:aa:bb:0c" {
				t.Errorf("ParseMAC(%q) = %s", in, got)
			}
		})
	}
	for _, in := range []string{"", "52:54:00:aa:bb", "52:54:00:aa:bb:cc:dd:ee", "zz:54:00:aa:bb:0c", "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"} {
		t.Run("bad "+in, func(t *testing.T) {
			if _, err := ParseMAC(in); err == nil {
				t.Errorf("ParseMAC(%q) succeeded", in)
			}
		})
	}
}

func TestLoadExamples(t *testing.T) {
	set, err := Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := ParseMAC("52:54:00:77:00:03")
	h, ok := set.Lookup(mac)
	if !ok {
		t.Fatal("r1-n03 not found")
	}
	if h.Hostname != "r1-n03" || h.Installer == nil || !strings.Contains(h.Installer.Cmdline, "loglevel=7") {
		t.Errorf("r1-n03 = %+v", h)
	}
	mac, _ = ParseMAC("52:54:00:77:00:02")
	h, ok = set.Lookup(mac)
	if !ok || h.Installer != set.DefaultInstaller() {
		t.Errorf("r1-n02 does not inherit the default installer: %+v", h)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // each error, as printed
	}{
		{"unknown key", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    hostnmae: x\n"},
			[]string{"a.yaml:3: field hostnmae not found in type profiles.hostEntry"}},
		{"syntax", map[string]string{"a.yaml": "hosts: [\n"},
			[]string{"a.yaml:1: did not find expected node content"}},
		{"bad mac", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00\n"},
			[]string{`a.yaml:2:10: invalid MAC address "52:54:00"`}},
		{"duplicate mac across files", map[string]string{
			"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n",
			"b.yml":  "hosts:\n  - {mac: 52-54-00-00-00-01}\n"},
			[]string{"b.yml:2:11: host 52:54:00:00:00:01 already defined at a.yaml:2"}},
		{"bad hostname", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    hostname: -bad_name\n"},
			[]string{`a.yaml:3:15: invalid hostname "-bad_name": want RFC 1123 labels (letters, digits, '-'), at most 253 characters`}},
		{"script injection in cmdline", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: vmlinuz\n    cmdline: \"a ${x} ; chain http://evil\"\n"},
			[]string{`a.yaml:4:14: installer cmdline: character '$' not allowed in kernel arguments`}},
		{"newline in cmdline", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: vmlinuz\n    cmdline: \"a\\nshell\"\n"},
			[]string{`a.yaml:4:14: installer cmdline: character '\n' not allowed in kernel arguments`}},
		{"reserved arg", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: vmlinuz\n    cmdline: rackboot.server=http://x\n"},
			[]string{`a.yaml:4:14: installer cmdline: rackboot.server=http://x: rackboot.* arguments are set by rackboot, not by profiles`}},
		{"path escape", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: ../../etc/shadow\n"},
			[]string{`a.yaml:3:13: installer kernel: "../../etc/shadow": path leaves the artifacts directory`}},
		{"absolute path", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: /boot/vmlinuz\n"},
			[]string{`a.yaml:3:13: installer kernel: "/boot/vmlinuz": artifact paths are relative to the artifacts directory`}},
		{"ftp url", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: ftp://x/vmlinuz\n"},
			[]string{`a.yaml:3:13: installer kernel: "ftp://x/vmlinuz": only http and https URLs or artifact paths are allowed`}},
		{"missing kernel", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    installer: {initrd: i}\n"},
			[]string{`a.yaml:3:16: installer: kernel is required`}},
		{"defaults twice", map[string]string{
			"a.yaml": "defaults:\n  installer: {kernel: k}\n",
			"b.yaml": "defaults:\n  installer: {kernel: k}\n"},
			[]string{`b.yaml:2:3: defaults already defined at a.yaml:2`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, tc.files)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			got := strings.Split(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""), "\n")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLookupIsByNormalisedMAC(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": "hosts:\n  - mac: 5254.00AB.CDEF\n    hostname: n1\n"})
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := ParseMAC("52-54-00-ab-cd-ef")
	if h, ok := set.Lookup(mac); !ok || h.Hostname != "n1" || h.Installer != nil {
		t.Errorf("Lookup = %+v, %v", h, ok)
	}
}

func FuzzLoad(f *testing.F) {
	if b, err := os.ReadFile("../examples/fleet.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("hosts:\n  - mac: 52:54:00:00:00:01\n    installer: {kernel: k, cmdline: x}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f.yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := Load(dir)
		if err != nil {
			return
		}
		for _, h := range set.Hosts() {
			if h.Installer != nil && (checkCmdline(h.Installer.Cmdline) != nil || checkLocation(h.Installer.Kernel) != nil) {
				t.Errorf("invalid installer accepted: %+v", h.Installer)
			}
		}
	})
}
