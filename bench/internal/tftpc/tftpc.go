// Package tftpc is the benchmark's TFTP client: a read-only, lock-step
// client (RFC 1350) with blksize and tsize (RFC 2348, 2349) that can lose
// packets on purpose.
//
// The benchmark needs what no packaged client gives: hundreds of transfers
// in one process released together, a digest of every file, and packet
// loss injected in the client, because this machine's kernel has no netem
// (docs/DESIGN.md, fact 9). Loss is applied to both directions, independently: a
// dropped DATA or OACK is read and thrown away, a dropped ACK or RRQ is
// never written. Either way the transfer only recovers by a timeout, which
// is what a lossy link does to any TFTP server.
package tftpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// TFTP opcodes (RFC 1350 section 5, RFC 2347).
const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Options of one download. Zero values mean the defaults.
type Options struct {
	// BlockSize is the blksize option asked for (RFC 2348); 0 asks for
	// none, so the server uses 512.
	BlockSize int
	// Timeout is how long the client waits for the next packet before
	// sending its last one again; default 1 s, the common ROM value.
	Timeout time.Duration
	// Retries is how many timeouts in a row end the transfer; default 5.
	Retries int
	// Loss is the probability (0 to 1) that a packet is lost, in each
	// direction independently.
	Loss float64
	// Seed makes the losses of a transfer reproducible.
	Seed uint64
}

// Result describes a finished download.
type Result struct {
	Bytes       int64
	SHA256      [sha256.Size]byte
	TSize       int64 // from the OACK; -1 when the server sent none
	BlockSize   int   // negotiated
	Retransmits int   // packets sent again after a timeout
	Dropped     int   // packets the loss injection threw away
}

// ErrServer wraps an ERROR packet from the server.
var ErrServer = errors.New("tftpc: server error")

// Client is one prepared transfer: Open binds its socket, so that a storm of
// clients can all be ready before any of them starts.
type Client struct {
	conn   *net.UDPConn
	opt    Options
	rng    *rand.Rand
	res    Result
	h      hash.Hash
	buf    []byte
	ackBuf [4]byte
}

// Open binds the client's socket (its transfer ID, RFC 1350 section 4).
func Open(opt Options) (*Client, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("tftpc: %w", err)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	if opt.Retries <= 0 {
		opt.Retries = 5
	}
	return &Client{conn: conn, opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x7466747063)), h: sha256.New()}, nil
}

// Close releases the socket.
func (c *Client) Close() error { return c.conn.Close() }

// Get downloads file from server and returns its size and digest. The
// file's bytes are hashed, not kept.
func (c *Client) Get(ctx context.Context, server netip.AddrPort, file string) (Result, error) {
	if d, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(d)
	}
	c.res = Result{TSize: -1, BlockSize: 512}
	c.h.Reset()

	rrq := request(file, c.opt.BlockSize)
	last := rrq // what a timeout sends again
	dst := server
	var peer netip.AddrPort // the server's transfer ID, once known
	next := uint16(1)
	if c.buf == nil {
		c.buf = make([]byte, 65536)
	}
	buf := c.buf
	c.send(last, dst)
	for timeouts := 0; ; {
		if ctx.Err() != nil {
			return c.res, ctx.Err()
		}
		c.conn.SetReadDeadline(time.Now().Add(c.opt.Timeout))
		n, from, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return c.res, fmt.Errorf("tftpc: %w", err)
			}
			if timeouts++; timeouts > c.opt.Retries {
				return c.res, fmt.Errorf("tftpc: %s: no answer after %d tries of %v (block %d)", file, timeouts, c.opt.Timeout, next)
			}
			c.res.Retransmits++
			c.send(last, dst)
			continue
		}
		if c.lose() {
			c.res.Dropped++
			continue
		}
		p := buf[:n]
		if peer.IsValid() && from != peer {
			// Another transfer ID: a second answer to a resent RRQ.
			c.send(errorPacket(5, "unknown transfer ID"), from)
			continue
		}
		if len(p) < 4 {
			continue
		}
		switch binary.BigEndian.Uint16(p) {
		case opERROR:
			return c.res, fmt.Errorf("%w: %s: code %d: %s", ErrServer, file, binary.BigEndian.Uint16(p[2:]), cstring(p[4:]))
		case opOACK:
			if peer.IsValid() {
				if next == 1 && from == peer {
					c.send(c.ack(0), dst) // the server did not get our ACK 0
				}
				continue
			}
			peer, dst = from, from
			if err := c.options(p[2:]); err != nil {
				c.send(errorPacket(8, err.Error()), from)
				return c.res, fmt.Errorf("tftpc: %s: %w", file, err)
			}
			timeouts = 0
			last = c.ack(0)
			c.send(last, dst)
		case opDATA:
			if !peer.IsValid() {
				peer, dst = from, from // no OACK: the server ignored the options
			}
			block := binary.BigEndian.Uint16(p[2:])
			if block != next {
				// A duplicate of the block we acknowledged last (our ACK
				// was lost): acknowledge it again. Anything else is stale.
				if block == next-1 {
					c.send(c.ack(block), dst)
				}
				continue
			}
			data := p[4:]
			c.h.Write(data)
			c.res.Bytes += int64(len(data))
			timeouts = 0
			last = c.ack(block)
			c.send(last, dst)
			next++ // wraps to 0 after 65535, as the servers do
			if len(data) < c.res.BlockSize {
				copy(c.res.SHA256[:], c.h.Sum(nil))
				if c.res.TSize >= 0 && c.res.TSize != c.res.Bytes {
					return c.res, fmt.Errorf("tftpc: %s: got %d bytes, tsize said %d", file, c.res.Bytes, c.res.TSize)
				}
				return c.res, nil
			}
		}
	}
}

// lose decides the fate of one packet.
func (c *Client) lose() bool { return c.opt.Loss > 0 && c.rng.Float64() < c.opt.Loss }

// send writes p unless the loss injection drops it.
func (c *Client) send(p []byte, to netip.AddrPort) {
	if c.lose() {
		c.res.Dropped++
		return
	}
	// A failed send is a lost packet; the timeout recovers it.
	c.conn.WriteToUDPAddrPort(p, to)
}

// options applies an OACK's options.
func (c *Client) options(b []byte) error {
	fields := bytes.Split(b, []byte{0})
	for i := 0; i+1 < len(fields); i += 2 {
		name, val := string(bytes.ToLower(fields[i])), string(fields[i+1])
		v, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("OACK option %s=%q: %w", name, val, err)
		}
		switch name {
		case "blksize":
			if v < 8 || v > 65464 || (c.opt.BlockSize > 0 && int(v) > c.opt.BlockSize) {
				return fmt.Errorf("OACK blksize %d, asked for %d", v, c.opt.BlockSize)
			}
			c.res.BlockSize = int(v)
		case "tsize":
			c.res.TSize = v
		}
	}
	return nil
}

// request is an RRQ for file in octet mode, asking for tsize and, when
// blksize > 0, that block size.
func request(file string, blksize int) []byte {
	b := binary.BigEndian.AppendUint16(nil, opRRQ)
	b = append(b, file...)
	b = append(b, 0)
	b = append(b, "octet\x00"...)
	if blksize > 0 {
		b = append(b, "blksize\x00"+strconv.Itoa(blksize)+"\x00"...)
	}
	return append(b, "tsize\x000\x00"...)
}

// ack returns the ACK of block in the client's one ACK buffer: a transfer
// has one ACK outstanding at a time, and the storm should measure servers,
// not the client's allocations.
func (c *Client) ack(block uint16) []byte {
	binary.BigEndian.PutUint16(c.ackBuf[:], opACK)
	binary.BigEndian.PutUint16(c.ackBuf[2:], block)
	return c.ackBuf[:]
}

func errorPacket(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opERROR), code)
	return append(append(b, msg...), 0)
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
