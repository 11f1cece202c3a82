package rollout

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps the engine apart from the servers, the BMC library and
// HTTP: of rackboot, it imports registry only (for the record types).
func TestImports(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if strings.Contains(imp, ".") && imp != "github.com/rackboot/rackboot/registry" {
			t.Errorf("rollout imports %s", imp)
		}
		if strings.HasPrefix(imp, "net/http") {
			t.Errorf("rollout imports %s", imp)
		}
	}
}
