package main

import (
	"bytes"
	"context"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestHelp runs every verb of commands with -h and --help: each prints its
// usage to stdout and exits 0, whatever the verbs added later.
func TestHelp(t *testing.T) {
	all := maps.Clone(commands)
	maps.Copy(all, generators)
	for _, name := range slices.Sorted(maps.Keys(all)) {
		for _, h := range []string{"-h", "--help"} {
			t.Run(name+" "+h, func(t *testing.T) {
				args := []string{h}
				var stdout, stderr bytes.Buffer
				if code := all[name](context.Background(), args, &stdout, &stderr); code != 0 {
					t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
				}
				if !strings.Contains(stdout.String(), "usage: rackboot "+name) {
					t.Errorf("stdout has no usage line:\n%s", stdout.String())
				}
				if stderr.Len() != 0 {
					t.Errorf("stderr: %s", stderr.String())
				}
			})
		}
	}
}

// TestVerbs: every verb of commands is in the usage text, described with
// its flags, so that the man page and the completions have it.
func TestVerbs(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range verbs() {
		seen[v.words[0]] = true
		if v.fs == nil || len(v.synopsis()) == 0 || v.summary == "" {
			t.Errorf("%s: flags %v, synopsis %q, summary %q", v.name(), v.fs != nil, v.synopsis(), v.summary)
		}
	}
	for name := range commands {
		if !seen[name] {
			t.Errorf("verb %s is not in the usage text of main.go", name)
		}
	}
}

// TestManpage: the man page has every verb and every flag of each, and
// groff reads it without a warning when it is installed.
func TestManpage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runManpage(context.Background(), nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	page := stdout.String()
	vs := verbs()
	for _, v := range vs {
		sec := ".SS " + roff(v.name()) + "\n"
		i := strings.Index(page, sec)
		if i < 0 {
			t.Errorf("no section for %s", v.name())
			continue
		}
		body := page[i+len(sec):]
		if j := strings.Index(body, ".SS "); j >= 0 {
			body = body[:j]
		}
		for _, f := range v.flags() {
			if !strings.Contains(body, `\fB`+roff(dashed(f.Name))+`\fR`) {
				t.Errorf("%s: flag %s missing", v.name(), f.Name)
			}
		}
	}
	if len(vs) < len(commands) {
		t.Errorf("%d verbs for %d commands", len(vs), len(commands))
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("no groff")
	}
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v\n%s", err, out)
	}
}

// TestCompletion: the scripts are valid shell, complete every verb and
// every flag, and paths after a flag whose argument is a file or dir.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		t.Run(sh, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runCompletion(context.Background(), []string{sh}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			script := stdout.String()
			for _, v := range verbs() {
				if !strings.Contains(script, v.words[len(v.words)-1]) {
					t.Errorf("verb %s missing", v.name())
				}
				for _, f := range v.flags() {
					if !strings.Contains(script, dashed(f.Name)) {
						t.Errorf("%s: flag %s missing", v.name(), f.Name)
					}
				}
			}
			if !strings.Contains(script, "-profiles|--profiles") && !strings.Contains(script, "'--profiles[") {
				t.Error("--profiles does not complete")
			}
			if _, err := exec.LookPath(sh); err != nil {
				t.Skipf("no %s", sh)
			}
			cmd := exec.Command(sh, "-n")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh, err, out)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := runCompletion(context.Background(), []string{"fish"}, &stdout, &stderr); code != 2 {
		t.Errorf("completion fish: exit %d", code)
	}
}

// TestBashCompletes runs the bash completion function.
func TestBashCompletes(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	var script bytes.Buffer
	runCompletion(context.Background(), []string{"bash"}, &script, io.Discard)
	for _, tc := range []struct{ words, want string }{
		{"rackboot vers", "version versions"},
		{"rackboot reinstall --sel", "--selector"},
		{"rackboot image a", "add"},
		{"rackboot image add --na", "--name"},
		{"rackboot render --profiles ../../exam", "../../examples"},
		{"rackboot hosts --server ", ""},
	} {
		t.Run(tc.words, func(t *testing.T) {
			words := strings.Split(tc.words, " ")
			cmd := exec.Command("bash", "-c", script.String()+`
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _rackboot; echo "${COMPREPLY[*]}"`, "x")
			cmd.Args = append(cmd.Args, words...)
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != tc.want {
				t.Errorf("got %q (%v), want %q", out, err, tc.want)
			}
		})
	}
}
