package dhcp

import (
	"errors"
	"net"

	"golang.org/x/net/ipv4"
)

// batchSize is the most datagrams one read takes from the socket (one
// recvmmsg on Linux) and so the most answers one write sends (one
// sendmmsg). A read returns whatever is queued, from one datagram up, and
// never waits for a batch to fill; only under load does it find several.
const batchSize = 32

// link reads and writes datagrams in batches, with the index of the
// interface they arrived on, so that each answer leaves by the interface
// its request came in on whatever the routing table says (IP_PKTINFO, the
// IfIndex of ipv4.ControlMessage). Sockets that are not UDP sockets are
// used plainly, one datagram at a time.
//
// Its buffers are allocated once: a datagram returned by read is valid
// until the next read, and write keeps nothing of its arguments' bytes.
type link struct {
	conn net.PacketConn
	pc   *ipv4.PacketConn // nil unless conn is a *net.UDPConn

	in   []ipv4.Message // receive slots, each with its payload and control buffers
	got  []datagram     // what the last read returned, backed by in
	out  []ipv4.Message // the messages of one write, reused
	info map[int][]byte // the encoded IP_PKTINFO for each outgoing interface
}

// datagram is one received datagram.
type datagram struct {
	b       []byte
	ifIndex int // the arriving interface; 0 if unknown
	peer    net.Addr
}

// outgoing is one datagram to send, and the outcome of sending it.
type outgoing struct {
	b       []byte
	ifIndex int // the interface to send through; 0: by routing
	dst     net.Addr
	err     error // set by write
}

func newLink(conn net.PacketConn) *link {
	l := &link{
		conn: conn,
		in:   make([]ipv4.Message, batchSize),
		got:  make([]datagram, batchSize),
		out:  make([]ipv4.Message, batchSize),
		info: map[int][]byte{},
	}
	if _, ok := conn.(*net.UDPConn); ok {
		l.pc = ipv4.NewPacketConn(conn)
	}
	payload := make([]byte, batchSize*maxPacket)
	oobLen := len(ipv4.NewControlMessage(ipv4.FlagInterface))
	oob := make([]byte, batchSize*oobLen)
	bufs := make([][]byte, 2*batchSize)
	for i := range l.in {
		bufs[i] = payload[i*maxPacket : (i+1)*maxPacket : (i+1)*maxPacket]
		l.in[i].Buffers = bufs[i : i+1 : i+1]
		l.in[i].OOB = oob[i*oobLen : (i+1)*oobLen : (i+1)*oobLen]
		l.out[i].Buffers = bufs[batchSize+i : batchSize+i+1 : batchSize+i+1]
	}
	return l
}

// enableInterface asks the kernel for the arriving interface of each
// datagram.
func (l *link) enableInterface() error {
	if l.pc == nil {
		return errors.New("not a UDP socket")
	}
	if err := l.pc.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		l.pc = nil
		return err
	}
	return nil
}

// read waits for the next datagram and returns it with every other one
// already queued, up to batchSize, in the order they arrived.
func (l *link) read() ([]datagram, error) {
	if l.pc == nil {
		n, peer, err := l.conn.ReadFrom(l.in[0].Buffers[0])
		if err != nil {
			return nil, err
		}
		l.got[0] = datagram{b: l.in[0].Buffers[0][:n], peer: peer}
		return l.got[:1], nil
	}
	n, err := l.pc.ReadBatch(l.in, 0)
	if err != nil {
		return nil, err
	}
	for i, m := range l.in[:n] {
		l.got[i] = datagram{b: m.Buffers[0][:m.N], ifIndex: ifIndexOf(m.OOB[:m.NN]), peer: m.Addr}
	}
	return l.got[:n], nil
}

// write sends the datagrams in order, as few system calls as the kernel
// allows, and records each one's error. A failed datagram does not keep
// the others from being sent.
func (l *link) write(ds []outgoing) {
	if l.pc == nil {
		for i := range ds {
			_, ds[i].err = l.conn.WriteTo(ds[i].b, ds[i].dst)
		}
		return
	}
	ms := l.out[:len(ds)]
	for i, d := range ds {
		ms[i].Buffers[0] = d.b
		ms[i].OOB = l.pktinfo(d.ifIndex)
		ms[i].Addr = d.dst
	}
	// sendmmsg stops at the first datagram that fails and reports the
	// ones before it as sent; the failure shows when the rest is sent
	// again, as the error of its first datagram.
	for off := 0; off < len(ms); {
		n, err := l.pc.WriteBatch(ms[off:], 0)
		if n > 0 {
			off += n
		}
		if err == nil && n > 0 || off == len(ms) {
			continue
		}
		if err == nil {
			err = errors.New("sendmmsg sent nothing")
		}
		if errors.Is(err, net.ErrClosed) {
			for ; off < len(ms); off++ {
				ds[off].err = err
			}
			break
		}
		ds[off].err = err
		off++
	}
	for i := range ms {
		ms[i].Buffers[0], ms[i].Addr = nil, nil
	}
}

// pktinfo returns the control message that sends a datagram through the
// interface ifIndex, or nil for 0 (by routing). Only the interface is set:
// the kernel picks that interface's address as the source, as for a
// socket bound to it.
func (l *link) pktinfo(ifIndex int) []byte {
	if ifIndex == 0 {
		return nil
	}
	b, ok := l.info[ifIndex]
	if !ok {
		b = (&ipv4.ControlMessage{IfIndex: ifIndex}).Marshal()
		l.info[ifIndex] = b
	}
	return b
}
