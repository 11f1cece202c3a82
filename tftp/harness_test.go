package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	pintftp "github.com/pin/tftp/v3"
)

// harness is a Server running on 127.0.0.1:0 over a temporary root.
type harness struct {
	srv       *Server
	addr      string // host:port of the server socket
	root      string
	files     map[string][]byte // contents written under root, by name
	logs      *syncBuffer
	transfers chan Transfer
	cancel    context.CancelFunc // ends Serve's context
	stop      func() error       // cancels Serve and returns its error
}

// Files every harness root holds. Sizes cover the block boundaries: empty,
// exactly one 512-byte block (the transfer ends with an empty DATA), and a
// file the size of Debian's undionly.kpxe.
var testFiles = map[string]int{
	"ipxe.efi":         300_000,
	"undionly.kpxe":    74_213,
	"empty":            0,
	"one-block":        512,
	"grub/grubx64.efi": 40_000,
}

// start runs srv (Root, Log and OnTransfer filled in if empty) until the test
// ends.
func start(t *testing.T, srv *Server) *harness {
	t.Helper()
	h := &harness{
		srv:       srv,
		files:     make(map[string][]byte),
		logs:      &syncBuffer{},
		transfers: make(chan Transfer, 1024),
	}
	if srv.Root == "" {
		h.root = filepath.Join(t.TempDir(), "root")
		rng := rand.New(rand.NewPCG(1, 2))
		for name, size := range testFiles {
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			writeFile(t, filepath.Join(h.root, name), b)
			h.files[name] = b
		}
		srv.Root = h.root
	}
	h.root = srv.Root
	if srv.Log == nil {
		srv.Log = slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if srv.OnTransfer == nil {
		srv.OnTransfer = func(tr Transfer) {
			select {
			case h.transfers <- tr:
			default: // never block a transfer goroutine on a slow test
			}
		}
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h.addr = conn.LocalAddr().String()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	var once sync.Once
	var serveErr error
	h.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(15 * time.Second):
				serveErr = errors.New("Serve did not return 15s after its context ended")
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// next returns the next finished request.
func (h *harness) next(t *testing.T) Transfer {
	t.Helper()
	select {
	case tr := <-h.transfers:
		return tr
	case <-time.After(10 * time.Second):
		t.Fatal("no transfer reported within 10s")
		return Transfer{}
	}
}

// client is pin/tftp's own client, with a quick timeout and no random
// backoff so failures show fast.
func (h *harness) client(t *testing.T, blksize int, tsize bool) *pintftp.Client {
	t.Helper()
	c, err := pintftp.NewClient(h.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(3 * time.Second)
	c.SetRetries(3)
	c.SetBackoff(func(int) time.Duration { return 0 })
	if blksize != 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(tsize)
	return c
}

// get downloads name and returns its bytes and the tsize the server sent
// (-1 if none).
func get(c *pintftp.Client, name string) ([]byte, int64, error) {
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, -1, err
	}
	tsize := int64(-1)
	if it, ok := wt.(pintftp.IncomingTransfer); ok {
		if n, ok := it.Size(); ok {
			tsize = n
		}
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, tsize, err
	}
	return buf.Bytes(), tsize, nil
}

// syncBuffer collects log output from concurrent transfer goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log records written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b.buf.Bytes()))
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("bad log output: %v", err)
		}
		out = append(out, m)
	}
}

// rawClient speaks TFTP by hand, for what pin/tftp's client cannot do:
// stop mid-transfer, send ERROR packets, or send EDK2's exact request.
type rawClient struct {
	t      *testing.T
	conn   *net.UDPConn
	server *net.UDPAddr // port 69 equivalent
	tid    *net.UDPAddr // the transfer's port, learnt from the first reply
}

const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

func newRawClient(t *testing.T, addr string) *rawClient {
	t.Helper()
	server, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, server: server}
}

// rrq sends a read request; opts are name, value pairs in order.
func (c *rawClient) rrq(name string, opts ...string) {
	p := binary.BigEndian.AppendUint16(nil, opRRQ)
	for _, s := range append([]string{name, "octet"}, opts...) {
		p = append(append(p, s...), 0)
	}
	c.send(c.server, p)
}

func (c *rawClient) ack(block uint16) {
	p := binary.BigEndian.AppendUint16(nil, opACK)
	c.send(c.tid, binary.BigEndian.AppendUint16(p, block))
}

func (c *rawClient) sendError(code uint16, msg string) {
	p := binary.BigEndian.AppendUint16(nil, opERROR)
	p = binary.BigEndian.AppendUint16(p, code)
	c.send(c.tid, append(append(p, msg...), 0))
}

func (c *rawClient) send(to *net.UDPAddr, p []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP(p, to); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next packet's opcode and the rest of it.
func (c *rawClient) recv() (uint16, []byte) {
	c.t.Helper()
	buf := make([]byte, 65536)
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		c.t.Fatalf("raw client: %v", err)
	}
	if n < 4 {
		c.t.Fatalf("raw client: short packet % x", buf[:n])
	}
	c.tid = from
	return binary.BigEndian.Uint16(buf), buf[2:n]
}

// expect receives a packet and fails unless it has opcode op.
func (c *rawClient) expect(op uint16) []byte {
	c.t.Helper()
	got, p := c.recv()
	if got != op {
		c.t.Fatalf("raw client: got opcode %d (% x), want %d", got, p, op)
	}
	return p
}

// parseOptions decodes the name/value pairs of an OACK.
func parseOptions(t *testing.T, p []byte) map[string]string {
	t.Helper()
	fields := bytes.Split(bytes.TrimSuffix(p, []byte{0}), []byte{0})
	if len(fields)%2 != 0 {
		t.Fatalf("odd OACK fields: %q", fields)
	}
	m := make(map[string]string)
	for i := 0; i < len(fields); i += 2 {
		m[string(fields[i])] = string(fields[i+1])
	}
	return m
}

// errorText decodes an ERROR packet's code and message.
func errorText(p []byte) string {
	return "code " + strconv.Itoa(int(binary.BigEndian.Uint16(p))) + ": " + string(bytes.TrimSuffix(p[2:], []byte{0}))
}
