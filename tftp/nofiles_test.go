package tftp

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	pintftp "github.com/pin/tftp/v3"
)

// TestOutOfFilesLogged: a transfer socket the library cannot open for want
// of file descriptors is an error an operator sees, with the count of
// refused requests, at most once a second; before, it was a debug line
// about a bad packet (found by e2e TestUnderAttack's control run).
func TestOutOfFilesLogged(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{}
	h := hook{s: s, log: slog.New(slog.NewTextHandler(&buf, nil))}
	emfile := fmt.Errorf("listen udp :0: %w", syscall.EMFILE)
	for range 100 {
		h.OnFailure(pintftp.TransferStats{}, emfile)
	}
	out := buf.String()
	if n := strings.Count(out, "out of file descriptors"); n != 1 {
		t.Fatalf("%d error lines for 100 refusals in a burst, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "requests_refused=1") {
		t.Errorf("log:\n%s", out)
	}
	if s.noFiles.Load() != 99 {
		t.Errorf("%d refusals waiting for the next line, want 99", s.noFiles.Load())
	}
	buf.Reset()
	h.OnFailure(pintftp.TransferStats{}, fmt.Errorf("bad packet"))
	if strings.Contains(buf.String(), "ERROR") {
		t.Errorf("a bad packet logged as an error:\n%s", buf.String())
	}
}
