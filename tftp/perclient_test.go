package tftp

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
)

// TestPerClientCap reproduces issue 13's defect 6: one address sends 300
// read requests and never acknowledges a block, which held every one of
// the 256 slots for the give-up time, so a machine at another address was
// told "server busy". With the per-client cap the flooding address holds
// MaxPerClient transfers and the other machine gets its file; without the
// cap (the old behaviour) it is refused.
func TestPerClientCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		perClient  int
		wantVictim bool // the second address gets its file
		wantHeld   int64
	}{
		{name: "capped", perClient: 0, wantVictim: true, wantHeld: DefaultMaxPerClient},
		{name: "no cap (before the fix)", perClient: -1, wantVictim: false, wantHeld: DefaultMaxTransfers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, &Server{MaxPerClient: tt.perClient})
			const flood = 300
			attacker := newRawClientAt(t, h.addr, net.IPv4(127, 0, 0, 1))
			// In rounds, each decided before the next: a burst of 300 would
			// overflow the server socket's receive buffer.
			for sent := 25; sent <= flood; sent += 25 {
				for range 25 {
					attacker.rrq("ipxe.efi") // never acknowledged
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					st := h.srv.Stats()
					if st.Active+int64(st.Limited+st.Busy) == int64(sent) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("after %d RRQs: %+v", sent, st)
					}
					time.Sleep(time.Millisecond)
				}
			}
			if st := h.srv.Stats(); st.Active != tt.wantHeld {
				t.Errorf("the flooding address holds %d transfers, want %d", st.Active, tt.wantHeld)
			}

			victim := newRawClientAt(t, h.addr, net.IPv4(127, 0, 0, 2))
			start := time.Now()
			got, errText := victim.download("undionly.kpxe")
			switch {
			case tt.wantVictim && !bytes.Equal(got, h.files["undionly.kpxe"]):
				t.Fatalf("victim at 127.0.0.2: %d bytes, error %q; want the file", len(got), errText)
			case !tt.wantVictim && errText != "code 1: "+msgBusy:
				t.Fatalf("victim at 127.0.0.2: error %q, want %q (the defect)", errText, msgBusy)
			}
			t.Logf("victim at 127.0.0.2: %d bytes in %v, error %q", len(got), time.Since(start).Round(time.Millisecond), errText)
			if !tt.wantVictim {
				return
			}

			// One line for the burst's first refusal, then one with its
			// count once the address's transfers have given up.
			want := flood - DefaultMaxPerClient
			deadline := time.Now().Add(15 * time.Second)
			for {
				var first, summary int
				for _, l := range h.logs.lines(t) {
					msg, _ := l["msg"].(string)
					switch {
					case msg == Limited.message():
						first++
					case strings.HasPrefix(msg, "tftp requests refused") && l["refused"] == float64(want):
						summary++
					}
				}
				if first == 1 && summary == 1 {
					break
				}
				if first > 1 || time.Now().After(deadline) {
					t.Fatalf("log: %d lines for the first refusal (want 1), %d summaries with refused=%d (want 1)", first, summary, want)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if st := h.srv.Stats(); st.Limited != uint64(want) {
				t.Errorf("Stats.Limited = %d, want %d", st.Limited, want)
			}
		})
	}
}

// newRawClientAt is newRawClient on a chosen local address: 127.0.0.0/8 is
// all loopback on Linux, so a test can be several machines.
func newRawClientAt(t *testing.T, addr string, ip net.IP) *rawClient {
	t.Helper()
	c := newRawClient(t, addr)
	c.conn.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Skipf("cannot bind %v: %v", ip, err)
	}
	t.Cleanup(func() { conn.Close() })
	c.conn = conn
	return c
}

// download fetches name in 512-byte blocks, acknowledging each, and
// returns the bytes, or the ERROR the server sent.
func (c *rawClient) download(name string) ([]byte, string) {
	c.rrq(name)
	var got []byte
	for want := uint16(1); ; want++ {
		op, p := c.recv()
		switch {
		case op == opERROR:
			return got, errorText(p)
		case op != opDATA || binary.BigEndian.Uint16(p) != want:
			c.t.Fatalf("raw client: opcode %d block % x, want DATA %d", op, p[:2], want)
		}
		got = append(got, p[2:]...)
		c.ack(want)
		if len(p)-2 < 512 {
			return got, ""
		}
	}
}
