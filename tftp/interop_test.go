package tftp

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestInterop downloads with independent TFTP clients (Debian packages
// atftp and curl), asking for blksize 1468 as EDK2 does. A missing client
// skips its subtest, loudly: that interoperability is then untested.
func TestInterop(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{})
	host, port, err := net.SplitHostPort(h.addr)
	if err != nil {
		t.Fatal(err)
	}
	want := h.files["ipxe.efi"]
	tests := []struct {
		name string
		args func(out string) []string
		// oack, if set, must match the client's trace of the server's OACK.
		oack   []*regexp.Regexp
		noOack *regexp.Regexp
	}{
		{
			name: "atftp",
			args: func(out string) []string {
				return []string{"--option", "blksize 1468", "--option", "tsize 0", "--option", "windowsize 4",
					"--trace", "--get", "-r", "ipxe.efi", "-l", out, host, port}
			},
			oack: []*regexp.Regexp{
				regexp.MustCompile(`received OACK <.*blksize: 1468`),
				regexp.MustCompile(`received OACK <.*tsize: 300000`),
			},
			// windowsize (RFC 7440) is asked for but must not be
			// acknowledged: the server cannot honour it.
			noOack: regexp.MustCompile(`received OACK <[^>]*windowsize`),
		},
		{
			name: "curl",
			args: func(out string) []string {
				return []string{"-sS", "--max-time", "20", "--tftp-blksize", "1468", "-o", out,
					"tftp://" + h.addr + "/ipxe.efi"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin, err := exec.LookPath(tt.name)
			if err != nil {
				t.Skipf("SKIPPED: %s is not installed, so interoperability with it is NOT tested (apt-get install %s)", tt.name, tt.name)
			}
			out := filepath.Join(t.TempDir(), "ipxe.efi")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			trace, err := exec.CommandContext(ctx, bin, tt.args(out)...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tt.name, err, trace)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s got %d bytes, want %d identical", tt.name, len(got), len(want))
			}
			for _, re := range tt.oack {
				if !re.Match(trace) {
					t.Errorf("%s trace does not match %v", tt.name, re)
				}
			}
			if tt.noOack != nil && tt.noOack.Match(trace) {
				t.Errorf("%s trace matches %v", tt.name, tt.noOack)
			}
			tr := summarize(h.next(t))
			if tr.Outcome != OK || tr.BlockSize != 1468 || tr.Bytes != int64(len(want)) {
				t.Errorf("transfer %+v; want ok, blksize 1468, %d bytes", tr, len(want))
			}
		})
	}
}
