package tftp

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSchedule(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		srv       *Server
		intervals []time.Duration // between the sends of one packet
		giveUp    time.Duration
	}{
		{"defaults", &Server{},
			[]time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, time.Second, time.Second},
			5600 * ms},
		{"fixed 1s, the old default", &Server{Timeout: time.Second, Retries: 5},
			[]time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second},
			6 * time.Second},
		{"Timeout above MaxTimeout is fixed", &Server{Timeout: 300 * ms, MaxTimeout: 100 * ms, Retries: 2},
			[]time.Duration{300 * ms, 300 * ms},
			900 * ms},
		{"cap not a power of two", &Server{Timeout: 30 * ms, MaxTimeout: 100 * ms, Retries: 4},
			[]time.Duration{30 * ms, 60 * ms, 100 * ms, 100 * ms},
			320 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.srv.Root = t.TempDir()
			c, err := tt.srv.config()
			if err != nil {
				t.Fatal(err)
			}
			defer c.root.Close()
			s := c.schedule
			var got []time.Duration
			for i := range s.retries {
				// What pin/tftp waits: its read deadline, then the backoff.
				got = append(got, s.first+s.backoff(i))
			}
			if diff := cmp.Diff(tt.intervals, got); diff != "" {
				t.Errorf("intervals (-want +got):\n%s", diff)
			}
			if s.giveUp() != tt.giveUp || c.grace != tt.giveUp {
				t.Errorf("giveUp %v, shutdown grace %v; want both %v", s.giveUp(), c.grace, tt.giveUp)
			}
		})
	}
	if s := (schedule{first: time.Second, max: time.Hour}); s.interval(1000) != time.Hour {
		t.Errorf("interval(1000) = %v, want the cap without overflow", s.interval(1000))
	}
}

// TestRetransmitLostData leaves the first DATA unacknowledged, as if it had
// been lost: with the default timing the server must send it again after
// 50 ms, not after a second, then after another 100 ms, and finish the
// transfer normally once the client answers.
func TestRetransmitLostData(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{})
	c := newRawClient(t, h.addr)
	c.rrq("one-block")
	first := c.expect(opDATA)
	begin := time.Now()
	c.expect(opDATA)
	gap1 := time.Since(begin)
	c.expect(opDATA)
	gap2 := time.Since(begin) - gap1
	t.Logf("DATA 1 sent again after %v, then after %v", gap1, gap2)
	if gap1 < 45*time.Millisecond || gap1 > 250*time.Millisecond {
		t.Errorf("first retransmission after %v, want about 50ms", gap1)
	}
	if gap2 < 95*time.Millisecond || gap2 > 300*time.Millisecond {
		t.Errorf("second retransmission %v after the first, want about 100ms", gap2)
	}
	if binary.BigEndian.Uint16(first) != 1 || len(first) != 2+512 {
		t.Fatalf("first packet: block %d, %d bytes", binary.BigEndian.Uint16(first), len(first)-2)
	}
	c.ack(1)
	if p := c.expect(opDATA); binary.BigEndian.Uint16(p) != 2 || len(p) != 2 {
		t.Fatalf("after ACK 1: block %d with %d bytes, want the empty block 2", binary.BigEndian.Uint16(p), len(p)-2)
	}
	c.ack(2)
	tr := h.next(t)
	if diff := cmp.Diff(summary{Outcome: OK, Size: 512, Bytes: 512, BlockSize: 512, Retransmits: 2}, summarize(tr)); diff != "" {
		t.Errorf("transfer (-want +got):\n%s", diff)
	}
}

// TestSilentClientAbandoned asks for a file and never acknowledges
// anything. With the default timing the server must send the first DATA
// ten times, at 0, 50, 150, 350, 750 ms, 1.55, 2.55, 3.55, 4.55 and 5.55 s,
// give up at 5.6 s, and log the transfer as failed.
func TestSilentClientAbandoned(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{})
	c := newRawClient(t, h.addr)
	c.rrq("ipxe.efi")
	var sends []time.Duration
	var begin time.Time
	var gaveUp time.Duration
	buf := make([]byte, 2048)
	for {
		c.conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		n, _, err := c.conn.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n >= 4 && binary.BigEndian.Uint16(buf) == opERROR {
			// pin/tftp tells the client when it gives up.
			gaveUp = time.Since(begin)
			break
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != opDATA || binary.BigEndian.Uint16(buf[2:]) != 1 {
			t.Fatalf("got % x, want DATA 1 again", buf[:min(n, 8)])
		}
		if begin.IsZero() {
			begin = time.Now()
		}
		sends = append(sends, time.Since(begin))
	}
	t.Logf("DATA 1 sent at %v, ERROR at %v", sends, gaveUp)
	if gaveUp < 5600*time.Millisecond || gaveUp > 6500*time.Millisecond {
		t.Errorf("ERROR after %v; want the server to give up at 5.6s", gaveUp)
	}
	want := []time.Duration{0, 50, 150, 350, 750, 1550, 2550, 3550, 4550, 5550}
	if len(sends) != len(want) {
		t.Fatalf("DATA 1 sent at %v; want %d sends (ms) %v", sends, len(want), want)
	}
	for i, w := range want {
		w *= time.Millisecond
		// Timers never fire early; a busy test machine makes them late.
		if sends[i] < w-5*time.Millisecond || sends[i] > w+w/10+200*time.Millisecond {
			t.Errorf("send %d at %v, want %v", i, sends[i], w)
		}
	}
	tr := h.next(t)
	t.Logf("silent client: %v after %v, %d retransmits: %v", tr.Outcome, tr.Duration, tr.Retransmits, tr.Err)
	if tr.Outcome != Failed || tr.Retransmits != 9 || tr.Err == nil ||
		!strings.Contains(tr.Err.Error(), "client stopped answering (10 sends, no ACK in 5.6s)") {
		t.Errorf("transfer: outcome %v, %d retransmits, err %v; want failed, 9, client stopped answering", tr.Outcome, tr.Retransmits, tr.Err)
	}
	if tr.Duration < 5600*time.Millisecond || tr.Duration > 7*time.Second {
		t.Errorf("transfer given up after %v, want 5.6s", tr.Duration)
	}
	var warned bool
	for _, l := range h.logs.lines(t) {
		if l["path"] == "ipxe.efi" && l["outcome"] == "failed" && l["level"] == "WARN" && l["msg"] == "tftp transfer failed" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning logged for the abandoned transfer:\n%s", h.logs.buf.String())
	}
	if st := h.srv.Stats(); st.Failed != 1 || st.Active != 0 {
		t.Errorf("Stats: %d failed, %d active; want 1 failed and the slot free", st.Failed, st.Active)
	}
}
