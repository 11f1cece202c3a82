package etcdstore

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayout keeps the etcd client in this package, and the etcd server
// (embed, 14 MB and 42 modules) out of every program: only tests link it,
// through etcdtest.
func TestLayout(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	const mod = "github.com/rackboot/rackboot"
	list := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	for _, line := range list("-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"/...") {
		pkg, imports, _ := strings.Cut(line, " ")
		if pkg == mod+"/registry/etcdstore" {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, "go.etcd.io/etcd/client/v3") {
				t.Errorf("%s imports %s: only registry/etcdstore may", pkg, imp)
			}
		}
	}
	for _, main := range list("-f", "{{if eq .Name \"main\"}}{{.ImportPath}}{{end}}", mod+"/...") {
		if main == "" {
			continue
		}
		for _, dep := range list("-deps", main) {
			if strings.HasPrefix(dep, "go.etcd.io/etcd/server/") || dep == mod+"/registry/etcdstore/etcdtest" {
				t.Errorf("program %s links %s", main, dep)
				break
			}
		}
	}
}
