package main

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestHelp runs every verb of commands with -h and --help: each prints its
// usage to stdout and exits 0, whatever the verbs added later.
func TestHelp(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		for _, h := range []string{"-h", "--help"} {
			t.Run(name+" "+h, func(t *testing.T) {
				args := []string{h}
				var stdout, stderr bytes.Buffer
				if code := commands[name](context.Background(), args, &stdout, &stderr); code != 0 {
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
