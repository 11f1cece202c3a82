package profiles

import (
	"bytes"
	"errors"
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

func FuzzLoad(f *testing.F) {
	var all [][]byte
	for _, pattern := range []string{"../examples/*.yaml", "testdata/*/*.yaml"} {
		names, _ := filepath.Glob(pattern)
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			if strings.HasPrefix(n, "../examples") {
				all = append(all, b)
			}
		}
	}
	f.Add(bytes.Join(all, []byte(fuzzSplit)))
	f.Add([]byte(testCatalog + fuzzSplit + "defaults: {channel: stable, layout: l2, network: {dns: [10.0.0.1]}}\nhosts:\n  - {mac: 52:54:00:00:00:01, hostname: n1, network: {address: 10.0.0.5/24}}\n"))
	f.Add([]byte("hosts:\n  - mac: 52:54:00:00:00:01\n    installer: {kernel: k, cmdline: x}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
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
	})
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
	p, err := Planner{}.Plan(h, nil, "http://192.0.2.1:8080")
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
