package lab

import (
	"os"
	"testing"
)

func TestOwnerPid(t *testing.T) {
	tests := []struct {
		name, prefix, ns string
		pid              int
		ok               bool
	}{
		{"server", "rbe2e", "rbe2e-4242-9f0c-srv", 4242, true},
		{"site", "rbe2e", "rbe2e-17-0000-site", 17, true},
		{"client", "rbe2e", "rbe2e-17-abcd-cli", 17, true},
		{"other prefix", "rbe2e", "demo-17-abcd-srv", 0, false},
		{"longer prefix", "rbe2e", "rbe2e2-17-abcd-srv", 0, false},
		{"custom prefix", "demo", "demo-17-abcd-srv", 17, true},
		{"unknown role", "rbe2e", "rbe2e-17-abcd-dns", 0, false},
		{"second appliance", "rbe2e", "rbe2e-17-abcd-app2", 17, true},
		{"etcd member", "rbe2e", "rbe2e-17-abcd-etcd3", 17, true},
		{"host role without number", "rbe2e", "rbe2e-17-abcd-etcd", 0, false},
		{"no pid", "rbe2e", "rbe2e-x-abcd-srv", 0, false},
		{"zero pid", "rbe2e", "rbe2e-0-abcd-srv", 0, false},
		{"too few parts", "rbe2e", "rbe2e-17-srv", 0, false},
		{"the shared lab", "rbe2e", "pxelab", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, ok := ownerPid(tt.prefix, tt.ns)
			if pid != tt.pid || ok != tt.ok {
				t.Errorf("ownerPid(%q, %q) = %d, %v, want %d, %v", tt.prefix, tt.ns, pid, ok, tt.pid, tt.ok)
			}
		})
	}
}

func TestAlive(t *testing.T) {
	if !alive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	// Above the kernel's pid_max limit (4194304), so no process has it.
	if alive(1 << 23) {
		t.Error("pid 8388608 is alive")
	}
}
