package dhcp

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// sysctlInt reads an integer under /proc/sys.
func sysctlInt(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// canForceBuffers reports whether this process has CAP_NET_ADMIN, which
// SO_RCVBUFFORCE and SO_SNDBUFFORCE need.
func canForceBuffers(t *testing.T) bool {
	t.Helper()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	return data[0].Effective&(1<<unix.CAP_NET_ADMIN) != 0
}

// TestListenBuffers reads back the buffers Listen obtained. Linux reports
// twice the size set. With CAP_NET_ADMIN (root) the sizes asked for are
// granted whatever net.core.rmem_max says; without it they are capped
// there, and Listen still succeeds. TestListenBuffersUnprivilegedRoot runs
// this test again as nobody.
func TestListenBuffers(t *testing.T) {
	plain, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	kernelRead, kernelWrite, err := Buffers(plain)
	if err != nil {
		t.Fatal(err)
	}
	force := canForceBuffers(t)
	rmemMax, wmemMax := sysctlInt(t, "net/core/rmem_max"), sysctlInt(t, "net/core/wmem_max")
	granted := func(asked, max int) int {
		if !force {
			asked = min(asked, max)
		}
		return 2 * asked
	}
	if force {
		t.Logf("with CAP_NET_ADMIN; rmem_max %d, wmem_max %d", rmemMax, wmemMax)
	} else {
		t.Logf("without CAP_NET_ADMIN; rmem_max %d, wmem_max %d", rmemMax, wmemMax)
	}

	tests := []struct {
		name            string
		lc              ListenConfig
		wantRead, wantW int
	}{
		{"defaults", ListenConfig{}, granted(DefaultReadBuffer, rmemMax), granted(DefaultWriteBuffer, wmemMax)},
		{"sizes", ListenConfig{ReadBuffer: 6 << 20, WriteBuffer: 300 << 10}, granted(6<<20, rmemMax), granted(300<<10, wmemMax)},
		{"kernel defaults", ListenConfig{ReadBuffer: -1, WriteBuffer: -1}, kernelRead, kernelWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tt.lc.Listen("", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			read, write, err := Buffers(conn)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([2]int{tt.wantRead, tt.wantW}, [2]int{read, write}); diff != "" {
				t.Errorf("receive, send buffer (-want +got):\n%s", diff)
			}
			if tt.lc.ReadBuffer >= 0 && read < kernelRead {
				t.Errorf("receive buffer %d, less than a plain socket's %d", read, kernelRead)
			}
			if tt.lc == (ListenConfig{}) && force && read < DefaultReadBuffer {
				t.Errorf("receive buffer %d with CAP_NET_ADMIN, want at least %d", read, DefaultReadBuffer)
			}
		})
	}
}
