package dhcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// answered is one OnReply call.
type answered struct{ Kind, Arch string }

// testServer is a Server serving a loopback socket for one test.
type testServer struct {
	addr    net.Addr
	replies chan answered
	logs    *syncBuffer
}

// startServer serves srv on conn (a fresh 127.0.0.1:0 socket when nil)
// until the test ends, and checks that Serve then returns nil.
func startServer(t *testing.T, srv *Server, conn net.PacketConn) *testServer {
	t.Helper()
	if conn == nil {
		var err error
		conn, err = net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	ts := &testServer{addr: conn.LocalAddr(), replies: make(chan answered, 16), logs: &syncBuffer{}}
	if srv.ServerIP == nil {
		srv.ServerIP = net.IPv4(127, 0, 0, 1)
	}
	if srv.Hosts == nil {
		srv.Hosts = hostSet{knownMAC.String(): true}
	}
	srv.Log = slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv.OnReply = func(kind, arch string) { ts.replies <- answered{kind, arch} }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return ts
}

// newClient opens a client socket on loopback.
func newClient(t *testing.T) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send writes b to the server.
func send(t *testing.T, c net.PacketConn, to net.Addr, b []byte) {
	t.Helper()
	if _, err := c.WriteTo(b, to); err != nil {
		t.Fatal(err)
	}
}

// receive reads the next answer on c, waiting at most two seconds.
func receive(t *testing.T, c net.PacketConn) (*dhcpv4.DHCPv4, net.Addr) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, maxPacket)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatalf("unparsable answer: %v", err)
	}
	return resp, from
}

// offerFields is what the loopback tests look at in an answer.
type offerFields struct {
	Type       string
	XID        string
	YIAddr     string
	SIAddr     string
	ServerID   string
	Class      string
	File       string
	BootOption string
	Option43   []byte
	Option97   []byte
}

func fieldsOf(m *dhcpv4.DHCPv4) offerFields {
	return offerFields{
		Type:       m.MessageType().String(),
		XID:        m.TransactionID.String(),
		YIAddr:     m.YourIPAddr.String(),
		SIAddr:     m.ServerIPAddr.String(),
		ServerID:   m.ServerIdentifier().String(),
		Class:      m.ClassIdentifier(),
		File:       m.BootFileName,
		BootOption: m.BootFileNameOption(),
		Option43:   m.Options.Get(dhcpv4.OptionVendorSpecificInformation),
		Option97:   m.Options.Get(dhcpv4.OptionClientMachineIdentifier),
	}
}

// TestServe exchanges real UDP packets with Serve: each request gets its
// answer back at the address and port it came from (as a relay on 67, BIOS
// iPXE on 68 or EDK2 on 4011 would).
func TestServe(t *testing.T) {
	ts := startServer(t, &Server{}, nil)
	tests := []struct {
		name    string
		req     *dhcpv4.DHCPv4
		want    offerFields
		wantArc answered
	}{
		{
			name: "uefi firmware discover",
			req:  newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_X86_64)...),
			want: offerFields{Type: "OFFER", XID: "0xdeadbeef", YIAddr: "0.0.0.0", SIAddr: "127.0.0.1", ServerID: "127.0.0.1",
				Class: "PXEClient", File: "ipxe.efi", BootOption: "ipxe.efi", Option43: []byte{6, 1, 8, 255}, Option97: testUUID},
			wantArc: answered{"offer", "efi-x64"},
		},
		{
			name: "ipxe discover",
			req:  newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.INTEL_X86PC), ipxeOptions())...),
			want: offerFields{Type: "OFFER", XID: "0xdeadbeef", YIAddr: "0.0.0.0", SIAddr: "127.0.0.1", ServerID: "127.0.0.1",
				Class: "PXEClient", File: "http://127.0.0.1:8080/boot.ipxe", BootOption: "http://127.0.0.1:8080/boot.ipxe",
				Option43: []byte{6, 1, 8, 255}, Option97: testUUID},
			wantArc: answered{"offer", "bios"},
		},
		{
			name: "request to the boot server port",
			req: newRequest(t, dhcpv4.MessageTypeRequest, knownMAC, with(pxeOptions(iana.EFI_BC),
				[]dhcpv4.Modifier{dhcpv4.WithClientIP(net.IPv4(127, 0, 0, 1))})...),
			want: offerFields{Type: "ACK", XID: "0xdeadbeef", YIAddr: "0.0.0.0", SIAddr: "127.0.0.1", ServerID: "127.0.0.1",
				Class: "PXEClient", File: "ipxe.efi", BootOption: "ipxe.efi", Option43: []byte{6, 1, 8, 255}, Option97: testUUID},
			wantArc: answered{"ack", "efi-bc"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t)
			send(t, c, ts.addr, tt.req.ToBytes())
			resp, from := receive(t, c)
			if diff := cmp.Diff(tt.want, fieldsOf(resp)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if from.String() != ts.addr.String() {
				t.Errorf("answer from %v, want %v", from, ts.addr)
			}
			select {
			case got := <-ts.replies:
				if diff := cmp.Diff(tt.wantArc, got); diff != "" {
					t.Errorf("OnReply (-want +got):\n%s", diff)
				}
			case <-time.After(2 * time.Second):
				t.Error("OnReply not called")
			}
		})
	}
}

// TestServeSilence sends what must not be answered, then a request that
// must. Serve handles packets in order, so if the first answer on the
// socket is the second request's, the first one was ignored; no timeout
// has to guess how long silence takes.
func TestServeSilence(t *testing.T) {
	ts := startServer(t, &Server{}, nil)
	probeXID := dhcpv4.TransactionID{0x70, 0x72, 0x6f, 0x62}
	probe := newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.INTEL_X86PC),
		[]dhcpv4.Modifier{dhcpv4.WithTransactionID(probeXID)})...)
	tests := []struct {
		name string
		b    []byte
	}{
		{"plain dhcp client", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC,
			dhcpv4.WithRequestedOptions(dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer)).ToBytes()},
		{"pxe without arch", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC,
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))).ToBytes()},
		{"unknown host", newRequest(t, dhcpv4.MessageTypeDiscover, unknownMAC, pxeOptions(iana.EFI_X86_64)...).ToBytes()},
		{"unsupported arch", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_ARM64)...).ToBytes()},
		{"release", newRequest(t, dhcpv4.MessageTypeRelease, knownMAC, pxeOptions(iana.EFI_X86_64)...).ToBytes()},
		{"garbage", []byte("not a dhcp packet")},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t)
			send(t, c, ts.addr, tt.b)
			send(t, c, ts.addr, probe.ToBytes())
			resp, _ := receive(t, c)
			if resp.TransactionID != probeXID {
				t.Fatalf("answered %v (xid %v), want silence", resp.MessageType(), resp.TransactionID)
			}
			<-ts.replies
		})
	}
}

// TestServeLogs: every line about a packet names the client, and refusals
// say why.
func TestServeLogs(t *testing.T) {
	// A socket from Listen reports the arriving interface from the start;
	// one from net.ListenPacket only once Serve has asked for it.
	conn, err := Listen("", 0)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, &Server{}, conn)
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ts.addr.(*net.UDPAddr).Port}
	c := newClient(t)
	send(t, c, to, newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(41)...).ToBytes())
	send(t, c, to, newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_X86_64)...).ToBytes())
	receive(t, c)
	<-ts.replies

	type line struct {
		Level, Msg, MAC, XID, Arch, Interface, Err, Path string
	}
	var got []line
	for _, b := range bytes.Split(bytes.TrimSpace(ts.logs.Bytes()), []byte("\n")) {
		var rec struct {
			Level, Msg, MAC, XID, Arch, Interface, Err, Path string
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("log line %q: %v", b, err)
		}
		got = append(got, line(rec))
	}
	want := []line{
		{Level: "WARN", Msg: "not answered", MAC: knownMAC.String(), XID: "0xdeadbeef", Arch: "arch-41", Interface: "lo",
			Err: "dhcp: no boot file for the client architecture: arch-41 is not in the table"},
		{Level: "INFO", Msg: "answered", MAC: knownMAC.String(), XID: "0xdeadbeef", Arch: "efi-x64", Interface: "lo", Path: "ipxe.efi"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

// TestListen serves a socket made by Listen, which reports the arriving
// interface, on loopback.
func TestListen(t *testing.T) {
	for _, ifname := range []string{"", "lo"} {
		t.Run("interface "+ifname, func(t *testing.T) {
			conn, err := Listen(ifname, 0)
			if err != nil {
				t.Fatal(err)
			}
			ts := startServer(t, &Server{}, conn)
			port := ts.addr.(*net.UDPAddr).Port
			c := newClient(t)
			send(t, c, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
				newRequest(t, dhcpv4.MessageTypeRequest, knownMAC, pxeOptions(iana.EFI_X86_64)...).ToBytes())
			resp, _ := receive(t, c)
			if got := fieldsOf(resp); got.Type != "ACK" || got.File != "ipxe.efi" {
				t.Errorf("answer %+v, want an ACK for ipxe.efi", got)
			}
			<-ts.replies
		})
	}
}

func TestServeEnds(t *testing.T) {
	tests := []struct {
		name    string
		srv     *Server
		end     func(cancel context.CancelFunc, conn net.PacketConn)
		wantErr bool
	}{
		{"context cancelled", &Server{Config: Config{ServerIP: net.IPv4(127, 0, 0, 1)}},
			func(cancel context.CancelFunc, _ net.PacketConn) { cancel() }, false},
		{"socket closed under it", &Server{Config: Config{ServerIP: net.IPv4(127, 0, 0, 1)}},
			func(_ context.CancelFunc, conn net.PacketConn) { conn.Close() }, true},
		{"no server IP", &Server{}, func(context.CancelFunc, net.PacketConn) {}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tt.srv.Serve(ctx, conn) }()
			tt.end(cancel, conn)
			select {
			case err := <-done:
				if (err != nil) != tt.wantErr {
					t.Errorf("Serve = %v, want error: %v", err, tt.wantErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return")
			}
			if _, err := conn.WriteTo([]byte{0}, conn.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("conn still open after Serve returned: write = %v", err)
			}
		})
	}
}

func TestReplyAddr(t *testing.T) {
	tests := []struct {
		name string
		peer net.Addr
		want string
	}{
		{"client without address", &net.UDPAddr{IP: net.IPv4zero, Port: 68}, "255.255.255.255:68"},
		{"client without address on 4011", &net.UDPAddr{IP: net.IPv4zero, Port: 4011}, "255.255.255.255:68"},
		{"edk2 from 4011", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 50), Port: 4011}, "10.0.0.50:4011"},
		{"ipxe from 68", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 50), Port: 68}, "10.0.0.50:68"},
		{"relay", &net.UDPAddr{IP: net.IPv4(10, 1, 0, 1), Port: 67}, "10.1.0.1:67"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replyAddr(tt.peer).String(); got != tt.want {
				t.Errorf("replyAddr(%v) = %s, want %s", tt.peer, got, tt.want)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the server's and the test's
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestServeBurst sends a burst that the loop reads in batches: answers of
// the fast and the slow path and refusals interleaved. Every answer must
// come back, in the order of the requests, each to its own request.
func TestServeBurst(t *testing.T) {
	ts := startServer(t, &Server{}, nil)
	c := newClient(t)
	if err := c.(*net.UDPConn).SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	type answerOf struct {
		XID  dhcpv4.TransactionID
		File string
	}
	var reqs [][]byte
	var want []answerOf
	for i := range 100 {
		xid := dhcpv4.TransactionID{0, 0, 0, byte(i)}
		mods := []dhcpv4.Modifier{dhcpv4.WithTransactionID(xid)}
		var file string
		switch i % 4 {
		case 0: // fast path
			mods, file = with(mods, pxeOptions(iana.INTEL_X86PC)), "undionly.kpxe"
		case 1: // refused: not a PXE client
			mods = append(mods, dhcpv4.WithRequestedOptions(dhcpv4.OptionRouter))
		case 2: // slow path: iPXE by user class alone
			mods, file = with(mods, pxeOptions(iana.INTEL_X86PC), []dhcpv4.Modifier{dhcpv4.WithUserClass("iPXE", false)}),
				"http://127.0.0.1:8080/boot.ipxe"
		case 3: // fast path, relayed
			mods, file = with(mods, pxeOptions(iana.EFI_X86_64), []dhcpv4.Modifier{
				dhcpv4.WithGatewayIP(net.IPv4(127, 0, 0, 1)),
				dhcpv4.WithGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 1, byte(i)}),
			}), "ipxe.efi"
		}
		if file != "" {
			want = append(want, answerOf{xid, file})
		}
		reqs = append(reqs, newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, mods...).ToBytes())
	}
	// OnReply blocks once ts.replies is full: drain it meanwhile.
	counted := make(chan struct{})
	go func() {
		for range want {
			<-ts.replies
		}
		close(counted)
	}()
	for _, b := range reqs {
		send(t, c, ts.addr, b)
	}

	var got []answerOf
	for range want {
		resp, _ := receive(t, c)
		got = append(got, answerOf{resp.TransactionID, resp.BootFileNameOption()})
		if v := resp.Options.Get(dhcpv4.OptionRelayAgentInformation); v != nil && v[2] != resp.TransactionID[3] {
			t.Errorf("xid %v carries the relay information of request %d", resp.TransactionID, v[2])
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	select {
	case <-counted:
	case <-time.After(5 * time.Second):
		t.Errorf("OnReply not called for each of the %d answers", len(want))
	}
}
