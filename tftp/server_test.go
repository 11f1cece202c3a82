package tftp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// summary is the part of a Transfer that is deterministic.
type summary struct {
	Outcome     Outcome
	Size, Bytes int64
	BlockSize   int
	Retransmits int
	Write       bool
}

func summarize(tr Transfer) summary {
	return summary{tr.Outcome, tr.Size, tr.Bytes, tr.BlockSize, tr.Retransmits, tr.Write}
}

// TestServeFiles downloads every kind of file with the options firmware
// uses, read from disk and from memory.
func TestServeFiles(t *testing.T) {
	t.Parallel()
	t.Run("from disk", func(t *testing.T) {
		t.Parallel()
		serveFiles(t, start(t, &Server{CacheSize: -1}))
	})
	t.Run("from memory", func(t *testing.T) {
		t.Parallel()
		h := start(t, &Server{})
		time.Sleep(settleTime + 100*time.Millisecond) // files are cached once settled
		serveFiles(t, h)
	})
}

func serveFiles(t *testing.T, h *harness) {
	if err := os.Symlink("ipxe.efi", filepath.Join(h.root, "link-inside")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		path      string // requested
		file      string // under root
		blksize   int    // requested; 0 = no option
		tsize     bool
		wantBlock int // negotiated
	}{
		{"no options", "ipxe.efi", "ipxe.efi", 0, false, 512},
		{"blksize 512 tsize", "ipxe.efi", "ipxe.efi", 512, true, 512},
		{"blksize 1468 tsize (EDK2)", "ipxe.efi", "ipxe.efi", 1468, true, 1468},
		{"blksize 1432 tsize (iPXE)", "undionly.kpxe", "undionly.kpxe", 1432, true, 1432},
		{"blksize 8192 capped at 1468", "ipxe.efi", "ipxe.efi", 8192, true, 1468},
		{"empty file", "empty", "empty", 1468, true, 1468},
		{"exactly one block", "one-block", "one-block", 0, true, 512},
		{"leading slash is the root", "/ipxe.efi", "ipxe.efi", 1468, false, 1468},
		{"subdirectory", "grub/grubx64.efi", "grub/grubx64.efi", 1468, true, 1468},
		{"symlink inside the root", "link-inside", "ipxe.efi", 1468, true, 1468},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := h.files[tt.file]
			got, tsize, err := get(h.client(t, tt.blksize, tt.tsize), tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d; contents differ", len(got), len(want))
			}
			wantTsize := int64(-1)
			// pin/tftp leaves tsize out of the OACK when it is 0, so an
			// empty file is announced without it.
			if tt.tsize && len(want) > 0 {
				wantTsize = int64(len(want))
			}
			if tsize != wantTsize {
				t.Errorf("tsize = %d, want %d", tsize, wantTsize)
			}
			tr := h.next(t)
			wantSum := summary{Outcome: OK, Size: int64(len(want)), Bytes: int64(len(want)), BlockSize: tt.wantBlock}
			if diff := cmp.Diff(wantSum, summarize(tr)); diff != "" {
				t.Errorf("transfer (-want +got):\n%s", diff)
			}
			if tr.Path != tt.path || tr.Err != nil || !tr.Client.Addr().IsLoopback() {
				t.Errorf("transfer path %q err %v client %v", tr.Path, tr.Err, tr.Client)
			}
		})
	}

	t.Run("one info line per transfer", func(t *testing.T) {
		var lines int
		for _, l := range h.logs.lines(t) {
			if l["outcome"] == "ok" && l["level"] == "INFO" && l["msg"] == "tftp transfer done" {
				lines++
			}
		}
		if lines != len(tests) {
			t.Errorf("%d log lines for %d transfers:\n%s", lines, len(tests), h.logs.buf.String())
		}
		st := h.srv.Stats()
		var wantBytes uint64
		for _, tt := range tests {
			wantBytes += uint64(len(h.files[tt.file]))
		}
		if diff := cmp.Diff(Stats{OK: uint64(len(tests)), Bytes: wantBytes}, st); diff != "" {
			t.Errorf("Stats (-want +got):\n%s", diff)
		}
	})
}

// TestServeEscapes sends names that must not reach anything outside the
// root, and some that must not be served at all.
func TestServeEscapes(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	writeFile(t, filepath.Join(base, "secret"), []byte("outside the root"))
	if err := os.Mkdir(filepath.Join(base, "root"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := start(t, &Server{Root: filepath.Join(base, "root")})
	writeFile(t, filepath.Join(h.root, "ipxe.efi"), []byte("inside"))
	writeFile(t, filepath.Join(h.root, "dir", "file"), []byte("inside"))
	if err := os.Symlink("../secret", filepath.Join(h.root, "out-relative")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "secret"), filepath.Join(h.root, "out-absolute")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../..", filepath.Join(h.root, "dir", "up")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(h.root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	const (
		denied   = "code: 1, message: access violation"
		notFound = "code: 1, message: file not found"
	)
	tests := []struct {
		name    string
		path    string
		wantErr string
		want    Outcome
	}{
		{"parent", "../secret", denied, Denied},
		{"absolute path not under root", "/etc/passwd", notFound, NotFound},
		{"absolute path of the secret", filepath.Join(base, "secret"), notFound, NotFound},
		{"climb through a directory", "dir/../../secret", denied, Denied},
		{"a/../../x", "a/../../x", denied, Denied},
		{"relative symlink out of root", "out-relative", denied, Denied},
		{"absolute symlink out of root", "out-absolute", denied, Denied},
		{"symlinked directory out of root", "dir/up/secret", denied, Denied},
		{"symlinked directory, then parent", "dir/up/../secret", denied, Denied},
		{"backslash", `..\secret`, denied, Denied},
		{"control byte", "ipxe.efi\n", denied, Denied},
		{"directory", "dir", denied, Denied},
		{"directory with slash", "dir/", denied, Denied},
		{"root", "/", denied, Denied},
		{"empty name", "", denied, Denied},
		{"fifo is not opened", "fifo", denied, Denied},
		{"missing", "shimx64.efi", notFound, NotFound},
		{"file used as directory", "ipxe.efi/x", notFound, NotFound},
		// A NUL cannot be part of a name on the wire: it ends the name
		// field (RFC 1350), so what follows becomes the mode. The server
		// sees "missing", never "../secret".
		{"NUL ends the name", "missing\x00../secret", notFound, NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := get(h.client(t, 1468, true), tt.path)
			if err == nil {
				t.Fatalf("served %d bytes: %q", len(got), got)
			}
			if diff := cmp.Diff(tt.wantErr, clientErr(err)); diff != "" {
				t.Errorf("client error (-want +got):\n%s", diff)
			}
			tr := h.next(t)
			if diff := cmp.Diff(tt.want, tr.Outcome); diff != "" {
				t.Errorf("outcome (-want +got):\n%s\nerr: %v", diff, tr.Err)
			}
			if tr.Size != -1 || tr.Bytes != 0 || tr.Err == nil {
				t.Errorf("transfer size %d bytes %d err %v; want no file opened, 0 bytes and a reason", tr.Size, tr.Bytes, tr.Err)
			}
		})
	}
	if st := h.srv.Stats(); st.Bytes != 0 || st.OK != 0 || st.Active != 0 {
		t.Errorf("Stats = %+v; want nothing sent", st)
	}
}

func TestWriteRefused(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{})
	rf, err := h.client(t, 0, false).Send("uploaded.bin", "octet")
	if err == nil {
		_, err = rf.ReadFrom(strings.NewReader("payload"))
	}
	if err == nil || !strings.Contains(err.Error(), msgReadOnly) {
		t.Fatalf("write: err = %v, want %q", err, msgReadOnly)
	}
	tr := h.next(t)
	if diff := cmp.Diff(summary{Outcome: Denied, Size: -1, Write: true}, summarize(tr)); diff != "" {
		t.Errorf("transfer (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(h.root, "uploaded.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uploaded file exists or stat failed: %v", err)
	}
}

// TestBusy fills the only transfer slot with a client that stops after one
// block, checks the next client is refused, then frees the slot.
func TestBusy(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{MaxTransfers: 1})
	holder := newRawClient(t, h.addr)
	holder.rrq("ipxe.efi")
	holder.expect(opDATA) // block 1 sent: the slot is taken

	_, _, err := get(h.client(t, 1468, true), "ipxe.efi")
	if clientErr(err) != "code: 1, message: "+msgBusy {
		t.Fatalf("second client: err = %v, want server busy", err)
	}
	if tr := h.next(t); tr.Outcome != Busy {
		t.Fatalf("second client: outcome %v (%v), want busy", tr.Outcome, tr.Err)
	}
	if st := h.srv.Stats(); st.Active != 1 {
		t.Errorf("Active = %d while one transfer runs, want 1", st.Active)
	}

	holder.sendError(0, "user abort") // ends the first transfer
	if tr := h.next(t); tr.Outcome != Aborted {
		t.Fatalf("first client: outcome %v (%v), want aborted", tr.Outcome, tr.Err)
	}
	got, _, err := get(h.client(t, 1468, true), "ipxe.efi")
	if err != nil || !bytes.Equal(got, h.files["ipxe.efi"]) {
		t.Fatalf("after the slot was freed: %d bytes, err %v", len(got), err)
	}
	if tr := h.next(t); tr.Outcome != OK {
		t.Fatalf("third client: outcome %v (%v), want ok", tr.Outcome, tr.Err)
	}
	want := Stats{OK: 1, Aborted: 1, Busy: 1, Bytes: uint64(len(h.files["ipxe.efi"])) + 512}
	if diff := cmp.Diff(want, h.srv.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

// TestProbe replays what EDK2's PXE client does (docs/DESIGN.md, fact 5): a request
// for the size only, ended with ERROR 8 after the OACK, then the download.
func TestProbe(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{})
	size := len(h.files["ipxe.efi"])

	c := newRawClient(t, h.addr)
	c.rrq("ipxe.efi", "tsize", "0", "blksize", "1468", "windowsize", "4")
	oack := parseOptions(t, c.expect(opOACK))
	// windowsize (RFC 7440) is not supported, so it must be absent: the
	// client then falls back to one block per ACK.
	if diff := cmp.Diff(map[string]string{"tsize": strconv.Itoa(size), "blksize": "1468"}, oack); diff != "" {
		t.Fatalf("OACK (-want +got):\n%s", diff)
	}
	c.sendError(8, "Tsize probe done")
	tr := h.next(t)
	if diff := cmp.Diff(summary{Outcome: Probe, Size: int64(size), BlockSize: 1468}, summarize(tr)); diff != "" {
		t.Errorf("probe (-want +got):\n%s\nerr: %v", diff, tr.Err)
	}

	// The real download, as EDK2 sends it: blksize, no tsize.
	c = newRawClient(t, h.addr)
	c.rrq("ipxe.efi", "blksize", "1468")
	if oack := parseOptions(t, c.expect(opOACK)); oack["blksize"] != "1468" {
		t.Fatalf("OACK %v, want blksize 1468", oack)
	}
	var got []byte
	for block := uint16(0); ; {
		c.ack(block)
		block++
		p := c.expect(opDATA)
		if n := uint16(p[0])<<8 | uint16(p[1]); n != block {
			t.Fatalf("DATA block %d, want %d", n, block)
		}
		got = append(got, p[2:]...)
		if len(p)-2 < 1468 {
			c.ack(block)
			break
		}
	}
	if !bytes.Equal(got, h.files["ipxe.efi"]) {
		t.Fatalf("downloaded %d bytes, want %d identical", len(got), size)
	}
	if tr := h.next(t); tr.Outcome != OK {
		t.Fatalf("download: outcome %v (%v)", tr.Outcome, tr.Err)
	}

	levels := map[string]string{}
	for _, l := range h.logs.lines(t) {
		levels[l["outcome"].(string)] = l["level"].(string)
	}
	if diff := cmp.Diff(map[string]string{"probe": "DEBUG", "ok": "INFO"}, levels); diff != "" {
		t.Errorf("log levels by outcome (-want +got):\n%s", diff)
	}
}

// TestShutdownStopsTransfers cancels Serve in the middle of a download: the
// client is told at its next ACK and Serve returns without waiting for the
// rest of the file.
func TestShutdownStopsTransfers(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{})
	c := newRawClient(t, h.addr)
	c.rrq("ipxe.efi")
	c.expect(opDATA)

	h.cancel()
	c.ack(1)
	if got := errorText(c.expect(opERROR)); got != "code 1: "+msgShutdown {
		t.Errorf("client got %q, want the shutdown error", got)
	}
	begin := time.Now()
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Serve returned %v after the context ended; want at once, no transfer is left", d)
	}
	tr := h.next(t)
	if tr.Outcome != Failed || !errors.Is(tr.Err, errShutdown) {
		t.Errorf("outcome %v err %v; want failed by shutdown", tr.Outcome, tr.Err)
	}
}

// TestShutdownBounded holds a transfer with a client that never answers:
// Serve must return after ShutdownTimeout, not when the transfer gives up.
func TestShutdownBounded(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{Timeout: 500 * time.Millisecond, Retries: 2, ShutdownTimeout: 100 * time.Millisecond})
	c := newRawClient(t, h.addr)
	c.rrq("ipxe.efi")
	c.expect(opDATA) // and never ACK

	begin := time.Now()
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// The transfer gives up after 0.5 + 1 + 0.5 = 2 s (see schedule).
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Serve returned after %v, want about ShutdownTimeout (100ms)", d)
	}
	tr := h.next(t)
	t.Logf("silent client transfer: %v after %v, %d retransmits: %v", tr.Outcome, tr.Duration, tr.Retransmits, tr.Err)
	if tr.Outcome != Failed {
		t.Errorf("silent client: outcome %v (%v), want failed", tr.Outcome, tr.Err)
	}
}

func TestServeClosesConn(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already over: Serve must still start and stop cleanly
	srv := &Server{Root: t.TempDir(), Log: discard()}
	if err := srv.Serve(ctx, conn); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if _, err := conn.WriteToUDP([]byte{0}, conn.LocalAddr().(*net.UDPAddr)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Serve: %v, want net.ErrClosed", err)
	}
}

func TestServeConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		srv     *Server
		conn    func(t *testing.T) net.PacketConn
		wantErr string
	}{
		{"missing root", &Server{Root: "/nonexistent/rackboot"}, udpConn, "tftp: open root: "},
		{"blksize cap 512", &Server{MaxBlockSize: 512}, udpConn, "tftp: MaxBlockSize 512 out of range 513..65464"},
		{"blksize cap too big", &Server{MaxBlockSize: 65465}, udpConn, "tftp: MaxBlockSize 65465 out of range 513..65464"},
		{"not a UDPConn", &Server{}, wrappedConn, "tftp: conn is tftp.packetConn, need *net.UDPConn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.srv.Root == "" {
				tt.srv.Root = t.TempDir()
			}
			tt.srv.Log = discard()
			err := tt.srv.Serve(context.Background(), tt.conn(t))
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Serve = %v, want %q...", err, tt.wantErr)
			}
		})
	}
}

func udpConn(t *testing.T) net.PacketConn {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// clientErr is pin/tftp's client error text without the ERROR packet's
// terminating NUL, which the library (v3.2.0) leaves in the message.
func clientErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.TrimSuffix(err.Error(), "\x00")
}

// packetConn hides the *net.UDPConn behind the interface, as a wrapper
// (a lossy test conn, a metrics shim) would.
type packetConn struct{ net.PacketConn }

func wrappedConn(t *testing.T) net.PacketConn { return packetConn{udpConn(t)} }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestIdentifyNamesTheMachine(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:77:00:09")
	var asked netip.Addr
	var mu sync.Mutex
	h := start(t, &Server{Identify: func(a netip.Addr) net.HardwareAddr {
		mu.Lock()
		asked = a
		mu.Unlock()
		return mac
	}})
	if _, _, err := get(h.client(t, 0, true), "undionly.kpxe"); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	mu.Lock()
	defer mu.Unlock()
	if asked != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Identify asked for %v, want 127.0.0.1", asked)
	}
	var found bool
	for _, l := range h.logs.lines(t) {
		if l["path"] == "undionly.kpxe" {
			found = true
			if l["mac"] != "52:54:00:77:00:09" {
				t.Errorf("log line mac = %v, want 52:54:00:77:00:09", l["mac"])
			}
		}
	}
	if !found {
		t.Error("no log line for undionly.kpxe")
	}
}
