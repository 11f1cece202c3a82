// Command pxeload is a proxy-DHCP load generator. It sends the
// DHCPDISCOVERs of PXE ROMs (options 60, 93, 94 and 97, with a GUID and the
// vendor class of the architecture) from many MAC addresses at a fixed rate,
// matches the OFFERs that come back by transaction id, and writes one
// result record: sent, answered, lost, late, and the latency percentiles
// from DISCOVER to OFFER as the client sees them.
//
// perfdhcp (kea-admin) is the standard tool and the bench runs it too, but
// it can only act as a relay and gives one MAC range and averages. pxeload
// also speaks the path real ROMs use (broadcast from port 68, answers by
// broadcast or unicast to port 68) and gives percentiles.
//
//	pxeload -iface vcli0 -rate 10000 -duration 10s -clients 1000 -arch 0,7 -tag server=rackboot
//	pxeload -mode relay -server 192.168.77.1 -rate 1000 -duration 2s -require-all
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rackboot/rackboot/bench/internal/result"
)

type config struct {
	mode     string // broadcast or relay
	iface    string
	server   netip.Addr
	local    netip.Addr
	rate     float64
	duration time.Duration
	timeout  time.Duration
	wait     time.Duration
	clients  []net.HardwareAddr
	arches   []uint16
	rcvbuf   int
	// srcPort and dstPort are 68 (broadcast) or 67 (relay) and 67 when
	// zero; tests move them off the privileged ports (srcPort < 0: any).
	srcPort, dstPort int
}

func main() {
	tags := result.Tags{}
	var (
		c          config
		server     = flag.String("server", "", "server `ip` (relay mode: required; broadcast mode: unicast to it instead of 255.255.255.255)")
		local      = flag.String("local", "", "relay mode: the `ip` to send from and put in giaddr (default: the address routing picks)")
		clients    = flag.Int("clients", 1000, "number of distinct client MACs")
		prefix     = flag.String("mac-prefix", "52:54:01", "first three bytes of the generated MACs")
		arch       = flag.String("arch", "0", "client architectures (option 93), comma-separated; client i uses the (i mod n)-th: 0 BIOS, 7 and 9 x86-64 UEFI")
		requireAll = flag.Bool("require-all", false, "exit 1 unless every DISCOVER got an OFFER within -timeout")
	)
	flag.StringVar(&c.mode, "mode", "broadcast", "broadcast (from port 68 to 255.255.255.255:67, as a PXE ROM) or relay (from port 67 with giaddr, as perfdhcp)")
	flag.StringVar(&c.iface, "iface", "", "interface to send on (broadcast mode; required there)")
	flag.Float64Var(&c.rate, "rate", 1000, "DISCOVERs per second")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send")
	flag.DurationVar(&c.timeout, "timeout", time.Second, "an OFFER later than this counts as late, not answered (perfdhcp -d)")
	flag.DurationVar(&c.wait, "wait", time.Second, "how long to listen after the last DISCOVER")
	flag.IntVar(&c.rcvbuf, "rcvbuf", 8<<20, "socket buffer `bytes` (forced as root)")
	flag.Var(tags, "tag", "`key=value` added to the result record (repeatable)")
	flag.Parse()

	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "pxeload: %v\n", err)
		os.Exit(2)
	}
	var err error
	if c.clients, err = generateMACs(*prefix, *clients); err != nil {
		fail(err)
	}
	if c.arches, err = parseArches(*arch); err != nil {
		fail(err)
	}
	if *server != "" {
		if c.server, err = netip.ParseAddr(*server); err != nil || !c.server.Is4() {
			fail(fmt.Errorf("-server %q: not an IPv4 address", *server))
		}
	}
	if *local != "" {
		if c.local, err = netip.ParseAddr(*local); err != nil || !c.local.Is4() {
			fail(fmt.Errorf("-local %q: not an IPv4 address", *local))
		}
	}
	switch {
	case c.mode != "broadcast" && c.mode != "relay":
		fail(fmt.Errorf("-mode %q: want broadcast or relay", c.mode))
	case c.mode == "relay" && !c.server.IsValid():
		fail(errors.New("relay mode needs -server"))
	case c.mode == "broadcast" && c.iface == "":
		fail(errors.New("broadcast mode needs -iface: a broadcast leaves by no route"))
	case c.rate <= 0 || c.duration <= 0:
		fail(errors.New("-rate and -duration must be positive"))
	}

	s, err := run(context.Background(), c)
	if err != nil {
		fail(err)
	}
	if err := result.Write(os.Stdout, result.Record{Tags: tags, Metrics: s.metrics()}); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "pxeload: %s: sent %d (%.0f/s), answered %d, late %d, lost %d; latency p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
		tags, s.sent, s.sentPerS(), s.answered, s.late, s.lost(), result.Ms(s.p(50)), result.Ms(s.p(99)), result.Ms(s.p(100)))
	if *requireAll {
		if s.sent == 0 || s.answered != s.sent || s.sendErrors > 0 {
			fmt.Fprintf(os.Stderr, "pxeload: FAIL: %d of %d DISCOVERs were not answered within %v (%d send errors)\n",
				s.sent-s.answered, s.sent, c.timeout, s.sendErrors)
			os.Exit(1)
		}
	}
}

// generateMACs returns n locally administered MACs: prefix, then the
// client number in three bytes.
func generateMACs(prefix string, n int) ([]net.HardwareAddr, error) {
	p, err := net.ParseMAC(prefix + ":00:00:00")
	if err != nil || len(p) != 6 {
		return nil, fmt.Errorf("-mac-prefix %q: want three bytes like 52:54:01", prefix)
	}
	if n < 1 || n > 1<<24 {
		return nil, fmt.Errorf("-clients %d: want 1 to %d", n, 1<<24)
	}
	out := make([]net.HardwareAddr, n)
	for i := range out {
		m := slices.Clone(p)
		m[3], m[4], m[5] = byte(i>>16), byte(i>>8), byte(i)
		out[i] = m
	}
	return out, nil
}

func parseArches(s string) ([]uint16, error) {
	var out []uint16
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil {
			return nil, fmt.Errorf("-arch %q: %w", s, err)
		}
		out = append(out, uint16(v))
	}
	return out, nil
}

// stats is the outcome of a run.
type stats struct {
	sent, answered, late, dup, foreign, sendErrors int
	sendTime                                       time.Duration
	latencies                                      []time.Duration // answered ones, sorted
}

func (s stats) lost() int { return s.sent - s.answered - s.late }

func (s stats) sentPerS() float64 { return float64(s.sent) / s.sendTime.Seconds() }

func (s stats) p(q float64) time.Duration { return result.Percentile(s.latencies, q) }

func (s stats) metrics() map[string]float64 {
	var sum time.Duration
	for _, l := range s.latencies {
		sum += l
	}
	avg := 0.0
	if len(s.latencies) > 0 {
		avg = result.Ms(sum) / float64(len(s.latencies))
	}
	return map[string]float64{
		"sent":           float64(s.sent),
		"answered":       float64(s.answered),
		"late":           float64(s.late),
		"lost":           float64(s.lost()),
		"dup":            float64(s.dup),
		"foreign":        float64(s.foreign),
		"send_errors":    float64(s.sendErrors),
		"send_s":         s.sendTime.Seconds(),
		"sent_per_s":     s.sentPerS(),
		"answers_per_s":  float64(s.answered) / s.sendTime.Seconds(),
		"unanswered_pct": 100 * float64(s.sent-s.answered) / float64(max(s.sent, 1)),
		"avg_ms":         avg,
		"p50_ms":         result.Ms(s.p(50)),
		"p90_ms":         result.Ms(s.p(90)),
		"p99_ms":         result.Ms(s.p(99)),
		"max_ms":         result.Ms(s.p(100)),
	}
}

// run sends for c.duration at c.rate, listens c.wait longer, and counts.
func run(ctx context.Context, c config) (stats, error) {
	conn, dst, relay, err := open(ctx, c)
	if err != nil {
		return stats{}, err
	}
	defer conn.Close()

	templates := make([]template, len(c.arches))
	for i, a := range c.arches {
		templates[i] = pxeTemplate(a, relay)
	}
	total := int(c.rate*c.duration.Seconds()) + 1
	// sentAt[i] is packet i's send time since start, plus one (0: unsent).
	// The receiver reads what the sender writes, so it is atomic.
	sentAt := make([]atomic.Int64, total)
	xidBase := rand.Uint32()
	start := time.Now()

	type recvOut struct {
		s   stats
		err error
	}
	done := make(chan recvOut, 1)
	go func() {
		s, err := receive(conn, xidBase, sentAt, start, c.timeout)
		done <- recvOut{s, err}
	}()

	var sent, sendErrors int
	buf := make([]byte, 1500)
	interval := time.Duration(float64(time.Second) / c.rate)
	for sent < total {
		// Open loop: send whatever is due by now, whatever the server
		// answers, like a rack of ROMs powered on together.
		due := min(int(time.Since(start).Seconds()*c.rate)+1, total)
		for ; sent < due; sent++ {
			i := sent % len(c.clients)
			n := templates[i%len(templates)].fill(buf, xidBase+uint32(sent), c.clients[i])
			sentAt[sent].Store(int64(time.Since(start)) + 1)
			if _, err := conn.WriteToUDPAddrPort(buf[:n], dst); err != nil {
				sentAt[sent].Store(0)
				sendErrors++
			}
		}
		if sent < total {
			time.Sleep(max(interval, 20*time.Microsecond))
		}
	}
	sendTime := time.Since(start)
	time.Sleep(c.wait)
	conn.SetReadDeadline(time.Now()) // ends receive
	out := <-done
	if out.err != nil {
		return stats{}, out.err
	}
	s := out.s
	s.sent, s.sendErrors, s.sendTime = total-sendErrors, sendErrors, sendTime
	return s, nil
}

// receive counts answers until the read deadline is set in the past.
func receive(conn *net.UDPConn, xidBase uint32, sentAt []atomic.Int64, start time.Time, timeout time.Duration) (stats, error) {
	var s stats
	seen := make([]bool, len(sentAt))
	buf := make([]byte, 4096)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		now := time.Since(start)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			return s, fmt.Errorf("read: %w", err)
		}
		a, ok := parseAnswer(buf[:n])
		idx := int(a.xid - xidBase)
		if !ok || a.msgType != msgOffer || idx < 0 || idx >= len(sentAt) {
			s.foreign++
			continue
		}
		at := sentAt[idx].Load()
		switch {
		case at == 0:
			s.foreign++
		case seen[idx]:
			s.dup++
		default:
			seen[idx] = true
			lat := now - time.Duration(at-1)
			if lat > timeout {
				s.late++
				continue
			}
			s.answered++
			s.latencies = append(s.latencies, lat)
		}
	}
	slices.Sort(s.latencies)
	return s, nil
}

// open opens the client socket and returns it with the destination and,
// in relay mode, the giaddr to put in each packet.
func open(ctx context.Context, c config) (*net.UDPConn, netip.AddrPort, net.IP, error) {
	dport := cmp.Or(c.dstPort, 67)
	port, dst := 68, netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), uint16(dport))
	if c.server.IsValid() {
		dst = netip.AddrPortFrom(c.server, uint16(dport))
	}
	bind := "0.0.0.0"
	var relay net.IP
	if c.mode == "relay" {
		port = 67 // a relay talks to servers from port 67 and is answered there
		local := c.local
		if !local.IsValid() {
			probe, err := net.Dial("udp4", dst.String())
			if err != nil {
				return nil, dst, nil, fmt.Errorf("no route to %v: %w", dst, err)
			}
			local = probe.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
			probe.Close()
		}
		bind, relay = local.String(), net.IP(local.AsSlice())
	}
	if c.srcPort != 0 {
		port = max(c.srcPort, 0) // negative: any free port
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			s := int(fd)
			if serr = syscall.SetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = syscall.SetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1); serr != nil {
				return
			}
			if c.iface != "" {
				if serr = syscall.BindToDevice(s, c.iface); serr != nil {
					serr = fmt.Errorf("bind to %s: %w", c.iface, serr)
					return
				}
			}
			// Forced sizes need CAP_NET_ADMIN; fall back to what
			// rmem_max allows. Overflowing the client's own buffer
			// would count as the server's drops.
			if syscall.SetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, c.rcvbuf) != nil {
				syscall.SetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_RCVBUF, c.rcvbuf)
			}
			if syscall.SetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, c.rcvbuf) != nil {
				syscall.SetsockoptInt(s, syscall.SOL_SOCKET, syscall.SO_SNDBUF, c.rcvbuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", net.JoinHostPort(bind, strconv.Itoa(port)))
	if err != nil {
		return nil, dst, nil, fmt.Errorf("listen on port %d: %w", port, err)
	}
	return pc.(*net.UDPConn), dst, relay, nil
}
