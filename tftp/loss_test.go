package tftp

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pintftp "github.com/pin/tftp/v3"
)

// TestLossRecovery downloads 1 MiB through a relay that drops 1% of the
// server's DATA packets. Each loss must cost one first retransmission
// timeout (50 ms by default) and nothing more: with a fixed 1 s timeout the
// same download takes about 8 s, with pin/tftp's defaults (5 s plus a random
// 0-1 s backoff) about 35 s.
func TestLossRecovery(t *testing.T) {
	t.Parallel()
	h := start(t, &Server{})
	want := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	writeFile(t, filepath.Join(h.root, "big.bin"), want)

	relay := newLossyRelay(t, h.addr, 0.01, 42)
	c, err := pintftp.NewClient(relay.addr())
	if err != nil {
		t.Fatal(err)
	}
	// The client waits longer than the server, as firmware does, so every
	// recovery is the server's retransmission.
	c.SetTimeout(5 * time.Second)
	c.SetBackoff(func(int) time.Duration { return 0 })
	c.SetBlockSize(1468)
	c.RequestTSize(true)

	begin := time.Now()
	got, tsize, err := get(c, "big.bin")
	elapsed := time.Since(begin)
	if err != nil {
		t.Fatalf("download through lossy relay: %v", err)
	}
	if !bytes.Equal(got, want) || tsize != int64(len(want)) {
		t.Fatalf("got %d bytes (tsize %d), want %d identical", len(got), tsize, len(want))
	}
	drops := int(relay.dropped.Load())
	if drops == 0 {
		t.Fatal("relay dropped nothing; the test proves nothing (change the seed)")
	}
	tr := h.next(t)
	// Every drop needs a retransmission. More than one per drop would mean
	// the server resends before the client could answer: on loopback that
	// happens only when the test machine stalls a transfer for 50 ms, so a
	// few are tolerated, a retransmission per block is not.
	if tr.Outcome != OK || tr.Retransmits < drops || tr.Retransmits > drops+drops/2+2 {
		t.Errorf("transfer: outcome %v, %d retransmits; want ok with one per drop (%d)", tr.Outcome, tr.Retransmits, drops)
	}
	limit := time.Duration(drops)*(DefaultTimeout+100*time.Millisecond) + time.Second
	t.Logf("%d of %d DATA packets dropped; download took %v (limit %v), %d retransmits",
		drops, relay.data.Load(), elapsed, limit, tr.Retransmits)
	if elapsed > limit {
		t.Errorf("download took %v with %d losses; want under %v", elapsed, drops, limit)
	}
}

// lossyRelay sits between one TFTP client and the server and drops a
// seeded-random share of the server's DATA packets. The client talks only to
// the relay's front port; the relay follows the server's transfer port.
type lossyRelay struct {
	front   *net.UDPConn
	server  *net.UDPAddr
	rate    float64
	rngMu   sync.Mutex
	rng     *rand.Rand
	mu      sync.Mutex
	backs   map[string]*relayLeg
	data    atomic.Int64 // DATA packets seen from the server
	dropped atomic.Int64
	wg      sync.WaitGroup
}

// relayLeg is one client's socket towards the server.
type relayLeg struct {
	client *net.UDPAddr
	back   *net.UDPConn
	mu     sync.Mutex
	tid    *net.UDPAddr // the server's transfer port, once known
}

func newLossyRelay(t *testing.T, server string, rate float64, seed uint64) *lossyRelay {
	t.Helper()
	saddr, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		t.Fatal(err)
	}
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &lossyRelay{
		front:  front,
		server: saddr,
		rate:   rate,
		rng:    rand.New(rand.NewPCG(seed, seed)),
		backs:  make(map[string]*relayLeg),
	}
	r.wg.Add(1)
	go r.fromClients()
	t.Cleanup(func() {
		front.Close()
		r.mu.Lock()
		for _, l := range r.backs {
			l.back.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *lossyRelay) addr() string { return r.front.LocalAddr().String() }

func (r *lossyRelay) fromClients() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := r.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		l, err := r.leg(from)
		if err != nil {
			return
		}
		l.mu.Lock()
		to := l.tid
		l.mu.Unlock()
		if to == nil {
			to = r.server // the request goes to the server port
		}
		l.back.WriteToUDP(buf[:n], to)
	}
}

func (r *lossyRelay) leg(client *net.UDPAddr) (*relayLeg, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.backs[client.String()]; ok {
		return l, nil
	}
	back, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	l := &relayLeg{client: client, back: back}
	r.backs[client.String()] = l
	r.wg.Add(1)
	go r.fromServer(l)
	return l, nil
}

func (r *lossyRelay) fromServer(l *relayLeg) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := l.back.ReadFromUDP(buf)
		if err != nil {
			return
		}
		l.mu.Lock()
		l.tid = from
		l.mu.Unlock()
		if n >= 2 && binary.BigEndian.Uint16(buf) == opDATA {
			r.data.Add(1)
			r.rngMu.Lock()
			drop := r.rng.Float64() < r.rate
			r.rngMu.Unlock()
			if drop {
				r.dropped.Add(1)
				continue
			}
		}
		r.front.WriteToUDP(buf[:n], l.client)
	}
}
