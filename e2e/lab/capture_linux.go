package lab

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// Capture watches every frame an interface of a lab namespace sends or
// receives, as tcpdump would, for byte strings: what crosses that wire in
// clear. It keeps counts, not the frames, so a whole install fits.
type Capture struct {
	fd       int
	needles  [][]byte
	stop     chan struct{}
	done     chan struct{}
	close    sync.Once
	stats    CaptureStats
	closeErr error

	mu     sync.Mutex
	seen   map[string]int
	frames uint64
	bytes  uint64
	err    error
}

// CaptureStats is what a Capture saw.
type CaptureStats struct {
	Frames, Bytes uint64
	// Drops are frames the kernel dropped because the reader fell
	// behind: with any, absence proves nothing.
	Drops uint32
	// Seen counts, per needle, the frames it was found in (or split
	// across with the frame before).
	Seen map[string]int
}

// captureBuffer is the socket's receive buffer: an image download at full
// speed must not overrun the reader between two reads.
const captureBuffer = 64 << 20

// Capture starts watching interface ifname of namespace ns for needles.
func (n *Net) Capture(ns, ifname string, needles ...string) (*Capture, error) {
	// A socket belongs to the namespace it was created in.
	fd, err := onThreadIn(ns, func() (int, error) { return packetSocket(ifname) })
	if err != nil {
		return nil, err
	}
	c := &Capture{fd: fd, stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]int{}}
	for _, s := range needles {
		c.needles = append(c.needles, []byte(s))
	}
	go c.read()
	return c, nil
}

// packetSocket opens an AF_PACKET socket for every protocol, bound to
// ifname.
func packetSocket(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, fmt.Errorf("lab: capture: %w", err)
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return -1, fmt.Errorf("lab: capture: packet socket: %w", err)
	}
	for _, o := range []struct{ level, opt, v int }{
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuffer},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("lab: capture: setsockopt: %w", err)
		}
	}
	// A read returns at least every 200 ms, so Close is prompt.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("lab: capture: setsockopt: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("lab: capture: bind to %s: %w", ifname, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *Capture) read() {
	defer close(c.done)
	longest := 0
	for _, n := range c.needles {
		longest = max(longest, len(n))
	}
	buf := make([]byte, 1<<18) // a GSO frame before segmentation can be 64 KiB
	var tail, joined []byte
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("lab: capture: %w", err)
			c.mu.Unlock()
			return
		}
		frame := buf[:min(n, len(buf))]
		// A needle split between two frames (of any flow) is found in
		// the end of one joined to the start of the next.
		joined = append(append(joined[:0], tail...), frame[:min(len(frame), longest)]...)
		c.mu.Lock()
		c.frames++
		c.bytes += uint64(n)
		for _, nd := range c.needles {
			if bytes.Contains(frame, nd) || (len(tail) > 0 && bytes.Contains(joined, nd)) {
				c.seen[string(nd)]++
			}
		}
		c.mu.Unlock()
		tail = append(tail[:0], frame[max(0, len(frame)-longest+1):]...)
	}
}

// Seen returns how many frames needle was found in so far.
func (c *Capture) Seen(needle string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[needle]
}

// Close stops the capture and returns what it saw, with the kernel's count
// of frames dropped. Closing again returns the same.
func (c *Capture) Close() (CaptureStats, error) {
	c.close.Do(func() { c.stats, c.closeErr = c.finish() })
	return c.stats, c.closeErr
}

func (c *Capture) finish() (CaptureStats, error) {
	close(c.stop)
	<-c.done
	st, serr := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	unix.Close(c.fd)
	c.mu.Lock()
	defer c.mu.Unlock()
	stats := CaptureStats{Frames: c.frames, Bytes: c.bytes, Seen: map[string]int{}}
	if serr == nil {
		stats.Drops = st.Drops
	}
	for k, v := range c.seen {
		stats.Seen[k] = v
	}
	if c.err != nil {
		return stats, c.err
	}
	if serr != nil {
		return stats, fmt.Errorf("lab: capture: statistics: %w", serr)
	}
	return stats, nil
}
