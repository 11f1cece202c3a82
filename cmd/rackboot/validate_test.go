package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestValidateExamples(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runValidate(context.Background(), []string{"../../examples"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !regexp.MustCompile(`^ok: 7 hosts, 4 groups, 2 versions, 2 layouts in 4 files \(digest [0-9a-f]{12}\)\n$`).MatchString(stdout.String()) {
		t.Errorf("stdout = %q", stdout.String())
	}
}

func TestValidateErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"a.yaml": "hosts:\n  - mac: 52:54:00:00:00:01\n    hostnmae: x\n",
		"b.yaml": "hosts:\n  - mac: 52:54:00\n  - mac: 52:54:00:00:00:02\n    installer: {kernel: ../x}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runValidate(context.Background(), []string{dir}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d", code)
	}
	got := strings.ReplaceAll(stderr.String(), dir+string(filepath.Separator), "")
	want := `a.yaml:3: unknown key "hostnmae" in a host (did you mean "hostname"?)
b.yaml:2:10: invalid MAC address "52:54:00"
b.yaml:4:25: installer kernel: "../x": path leaves the artifacts directory
3 errors
`
	if got != want || stdout.Len() != 0 {
		t.Errorf("stderr:\n%s\nwant:\n%s\nstdout: %q", got, want, stdout.String())
	}
}

func TestValidateUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"a", "b"}, {"-x"}} {
		var stdout, stderr bytes.Buffer
		if code := runValidate(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("validate %v: exit %d", args, code)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runValidate(context.Background(), []string{filepath.Join(t.TempDir(), "missing")}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no such file") {
		t.Errorf("missing directory: exit %d, %s", code, stderr.String())
	}
}
