package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLayout keeps the architecture visible in the folders: the servers
// and the disk code never import each other, and the model imports no
// server. Only cmd/* wires them together.
func TestLayout(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	const mod = "github.com/rackboot/rackboot/"
	apart := []string{"dhcp", "tftp", "ipxe", "imaging", "artifacts", "metrics"}
	forbidden := map[string][]string{"profiles": apart}
	// The agent contract is a leaf: no package of ours, no disk code.
	forbidden["agentapi"] = []string{"api", "profiles", "registry", "imaging", "dhcp", "tftp", "ipxe", "artifacts", "metrics"}
	// The daemon and the agent API speak the contract without linking
	// the disk writer. The chunk store's format (imaging/chunkstore), which
	// `rackboot image add` and the planner use, is a leaf without it.
	forbidden["cmd/rackboot"] = []string{"imaging"}
	forbidden["api"] = []string{"imaging"}
	forbidden["imaging/chunkstore"] = []string{"imaging", "api", "profiles", "registry", "dhcp", "tftp", "ipxe", "artifacts", "metrics"}
	// The peer coordinator is fed by the agent API and asked by the
	// artifacts handler, through adapters in cmd/rackboot: it imports
	// neither, nor any other server (docs/DESIGN.md, "Peer distribution").
	forbidden["peers"] = []string{"imaging", "api", "profiles", "registry", "dhcp", "tftp", "ipxe", "artifacts", "metrics"}
	// BMC control and the rollout engine know no server, no HTTP API and
	// no YAML: the daemon gives them what they need (docs/DESIGN.md,
	// section 12). The daemon does not link the BMC doubles.
	forbidden["power"] = []string{"api", "profiles", "registry", "rollout", "imaging", "dhcp", "tftp", "ipxe", "artifacts", "metrics", "peers"}
	forbidden["rollout"] = []string{"api", "profiles", "power", "imaging", "dhcp", "tftp", "ipxe", "artifacts", "metrics", "peers"}
	forbidden["cmd/rackboot"] = append(forbidden["cmd/rackboot"], "power/powertest")
	// The etcd store knows only the registry; the daemon links it but not
	// its test server (etcdtest: the embedded etcd, +14 MB).
	forbidden["registry/etcdstore"] = []string{"api", "profiles", "power", "rollout", "imaging", "dhcp", "tftp", "ipxe", "artifacts", "metrics", "peers"}
	forbidden["cmd/rackboot"] = append(forbidden["cmd/rackboot"], "registry/etcdstore/etcdtest")
	for _, p := range apart {
		for _, q := range apart {
			if p != q {
				forbidden[p] = append(forbidden[p], q)
			}
		}
	}
	for pkg, not := range forbidden {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
			}
			deps := strings.Fields(string(out))
			for _, d := range deps {
				if strings.HasPrefix(d, "github.com/diskfs/go-diskfs") && pkg != "imaging" && !slices.Contains(apart, pkg) {
					t.Errorf("%s links %s", pkg, d)
				}
				// Only the etcd store links the etcd client, and nothing
				// but tests links the etcd server.
				if strings.HasPrefix(d, "go.etcd.io/etcd/server/") || strings.HasPrefix(d, "go.etcd.io/etcd/client/v3") && pkg != "registry/etcdstore" && pkg != "cmd/rackboot" {
					t.Errorf("%s links %s", pkg, d)
				}
			}
			for _, n := range not {
				for _, d := range deps {
					if d == mod+pkg || d == mod+"imaging/chunkstore" && pkg != n {
						continue
					}
					if d == mod+n || strings.HasPrefix(d, mod+n+"/") {
						t.Errorf("%s imports %s", pkg, d)
					}
				}
			}
		})
	}
}
