package profiles

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fuzzSplit separates the files of one fuzz input, so that the fuzzer also
// explores references and duplicates across files.
const fuzzSplit = "\n#---\n"

// FuzzLoad loads one input split into files at fuzzSplit and checks what
// is accepted. Its seeds are small fragments, one concern each: the fuzzer
// minimizes every input that finds new coverage, in O(n²) executions of an
// input of n bytes, and with the example fleet (9 KB) as seeds a whole
// default run went into minimizing (10 executions in 60 s). Inputs over
// fuzzMax bytes are skipped for the same reason; the whole example fleet
// goes through the same checks in TestFuzzChecksExamples.
func FuzzLoad(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add([]byte(seed))
	}
	// The go command's minimization budget, 60 s per new input, is made
	// for targets a thousand times cheaper; unless the run sets one,
	// spend at most fuzzMinimize on each.
	if fl := flag.Lookup("test.fuzzminimizetime"); fl != nil && !flagSet("test.fuzzminimizetime") {
		if err := fl.Value.Set(fuzzMinimize); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMax {
			return
		}
		fuzzLoad(t, b)
	})
}

// fuzzMax is the largest input FuzzLoad tries, and fuzzMinimize its
// budget for minimizing one new input.
const (
	fuzzMax      = 1024
	fuzzMinimize = "3s"
)

// flagSet reports whether the command line set the flag name.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// fuzzSeedCatalog is a version and a layout for the seeds that plan.
const fuzzSeedCatalog = "versions:\n  - {name: v1, number: 1, channel: stable, image: {url: v1.img.zst, kind: partitions, sha256: \"" + testSHA + "\"}, installer: {kernel: vmlinuz, initrd: initrd.img, cmdline: console=ttyS0}}\n" +
	"layouts:\n  - name: l\n    disk: {select: smallest, min_size: 8GiB}\n    partitions:\n      - {name: esp, size: 512MiB, type: esp, filesystem: vfat}\n      - {name: cidata, size: 16MiB, type: linux, content: config}\n      - {name: root, size: rest, type: linux-root, content: image}\n"

// fuzzSeeds are FuzzLoad's seeds: each key of the model in a few lines.
var fuzzSeeds = []string{
	fuzzSeedCatalog + fuzzSplit + "defaults: {channel: stable, layout: l}\nhosts:\n  - {mac: 52:54:00:00:00:01, hostname: n1}\n",
	"groups:\n  - name: g\n    match: {mac_prefix: \"52:54:00\", labels: {rack: r1}}\n    kernel_args: quiet\n    network: {address: 10.0.0.5/24, gateway: 10.0.0.1, dns: [10.0.0.1], search: [lab]}\n" +
		"hosts:\n  - mac: 52-54-00-00-00-02\n    group: g\n    labels: {rack: r1}\n    installer: {kernel: k, cmdline: x}\n",
	fuzzSeedCatalog + fuzzSplit + "defaults:\n  channel: stable\n  layout: l\n  users: [{name: ops, sudo: true, password: \"" + testHash + "\", ssh_keys: [\"" + testKey + "\"]}]\n  files: [{path: /etc/motd, content: hi, mode: \"0644\"}]\n  cloud_config: {packages: [chrony], runcmd: [[echo, a]], bootcmd: [x]}\nhosts:\n  - {mac: 5254.0000.0003, hostname: n3, network: {dhcp: true}}\n",
	"layouts:\n  - name: s\n    disk: {path: /dev/sda}\n    partitions:\n      - {name: c, size: 16MiB, type: linux, content: config}\n      - {name: swap, size: 1GiB, type: swap, filesystem: swap, mount: swap}\n      - {name: data, size: rest, type: linux, filesystem: ext4, preserve: true, mount: /srv}\n",
	"hosts:\n  - mac: 52:54:00:00:00:01\n    installer: {kernel: k, cmdline: x}\n",
	"a: &x [*x]\n",
}

// fuzzLoad is FuzzLoad's body.
func fuzzLoad(t *testing.T, b []byte) {
	var srcs []source
	for i, part := range bytes.Split(b, []byte(fuzzSplit)) {
		srcs = append(srcs, source{name: fmt.Sprintf("f%d.yaml", i), data: part})
	}
	set, err := load(srcs)
	if err != nil {
		checkFuzzErrors(t, err)
		return
	}
	for _, h := range set.Hosts() {
		checkFuzzHost(t, set, h)
	}
}

// TestFuzzChecksExamples puts the example fleet and the test fleets, each
// file alone and all of the examples together, through FuzzLoad's checks.
func TestFuzzChecksExamples(t *testing.T) {
	var all [][]byte
	for _, pattern := range []string{"../examples/*.yaml", "testdata/*/*.yaml"} {
		names, _ := filepath.Glob(pattern)
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(n, func(t *testing.T) { fuzzLoad(t, b) })
			if strings.HasPrefix(n, "../examples") {
				all = append(all, b)
			}
		}
	}
	if len(all) == 0 {
		t.Fatal("no examples")
	}
	fuzzLoad(t, bytes.Join(all, []byte(fuzzSplit)))
}

// checkFuzzErrors: every failure is an ErrorList of one-line messages that
// name their file, so that `file:line: message` output stays parseable.
func checkFuzzErrors(t *testing.T, err error) {
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error is not a non-empty ErrorList: %T %v", err, err)
	}
	for _, e := range list {
		if e.File == "" || strings.ContainsAny(e.Msg, "\n\r") {
			t.Errorf("bad error %q", e.Error())
		}
	}
}

// checkFuzzHost: what was accepted is safe to put in a script, a command
// line and a config drive.
func checkFuzzHost(t *testing.T, set *Set, h *Host) {
	if got, ok := set.Lookup(h.MAC); !ok || got != h {
		t.Errorf("Lookup(%s) does not find its host", h.MAC)
	}
	if h.Hostname != "" && !validHostname(h.Hostname) {
		t.Errorf("invalid hostname accepted: %q", h.Hostname)
	}
	if in := h.Installer; in != nil {
		if checkLocation(in.Kernel) != nil || in.Initrd != "" && checkLocation(in.Initrd) != nil || checkCmdline(in.Cmdline) != nil {
			t.Errorf("invalid installer accepted: %+v", in)
		}
	}
	for _, u := range h.Users {
		if u.Password != "" && checkPassword(u.Password) != nil {
			t.Errorf("invalid password hash accepted for %s", u.Name)
		}
	}
	h.Settings()
	p, err := Planner{}.Plan(h, nil, nil, "http://192.0.2.1:8080")
	if errors.Is(err, ErrNoPlan) {
		return
	}
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	for _, f := range p.ConfigDrive {
		var v any
		if err := yaml.Unmarshal([]byte(f.Content), &v); err != nil {
			t.Errorf("%s does not parse: %v\n%s", f.Name, err, f.Content)
		}
	}
}
