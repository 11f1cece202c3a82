package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	pintftp "github.com/pin/tftp/v3"
)

// readHandler returns the function pin/tftp calls, on a new goroutine, for
// every read request (RRQ). Whatever error it returns is sent to the client
// as an ERROR packet, so refusals return a *wireError with fixed wording.
func (s *Server) readHandler(ctx context.Context, c config) func(string, io.ReaderFrom) error {
	return func(name string, rf io.ReaderFrom) error {
		start := time.Now()
		t := Transfer{Path: name, Size: -1}
		if ot, ok := rf.(pintftp.OutgoingTransfer); ok {
			t.Client = addrPort(ot.RemoteAddr())
		}
		err := s.send(ctx, c, &t, rf)
		t.Duration = time.Since(start)
		s.report(c.log, t)
		return err
	}
}

// send runs one read request and fills in t. It releases its transfer slot
// and closes the file before returning, so that by the time OnTransfer sees
// the outcome the slot is free again.
func (s *Server) send(ctx context.Context, c config, t *Transfer, rf io.ReaderFrom) error {
	refuse := func(o Outcome, msg string, cause error) error {
		t.Outcome, t.Err = o, cause
		return &wireError{msg: msg, cause: cause}
	}
	rel, err := cleanPath(t.Path)
	if err != nil {
		return refuse(Denied, msgDenied, err)
	}
	// The per-client cap first: an address over it never takes one of the
	// shared slots, even for a moment.
	if ok, first := s.admit(c, t.Client.Addr()); !ok {
		t.quiet = !first
		return refuse(Limited, msgLimited, fmt.Errorf("%d transfers from this address running", c.maxPerClient))
	}
	defer s.leave(c, t.Client.Addr())
	if s.counters.active.Add(1) > c.maxTransfers {
		s.counters.active.Add(-1)
		return refuse(Busy, msgBusy, fmt.Errorf("%d transfers running", c.maxTransfers))
	}
	defer s.counters.active.Add(-1)

	f, size, err := open(c, rel)
	if err != nil {
		switch o := classifyOpen(err); o {
		case NotFound:
			return refuse(o, msgNotFound, err)
		case Denied:
			return refuse(o, msgDenied, err)
		default:
			return refuse(o, msgReadErr, err)
		}
	}
	defer f.Close()
	t.Size, t.BlockSize = size, 512

	r := s.track(t.Client)
	// The reader is also an io.Seeker, so the library fills in tsize
	// (RFC 2349) itself, and only for octet mode: in netascii mode the
	// converted length is unknown and the library leaves tsize out.
	n, err := rf.ReadFrom(abortReader{ctx: ctx, f: f})
	t.Bytes = n
	if st := s.untrack(t.Client, r); st.done {
		t.BlockSize = st.blockSize
		t.Retransmits = st.retransmits
	}
	pe, isPeer := asPeerError(err)
	switch {
	case err == nil:
		t.Outcome = OK
	case isPeer && pe.block == 0 && pe.code == errCodeOptionNegotiation:
		t.Outcome, t.Err = Probe, pe
	case isPeer:
		t.Outcome, t.Err = Aborted, pe
	default:
		t.Outcome, t.Err = Failed, failure(err, c.schedule)
	}
	return err
}

// failure turns an error ending a transfer into one that says why in the
// log: the cause behind a message sent to the client, or a silent client.
func failure(err error, sch schedule) error {
	var we *wireError
	var ne net.Error
	switch {
	case errors.As(err, &we):
		return we.cause
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("client stopped answering (%d sends, no ACK in %v): %w", sch.retries+1, sch.giveUp(), err)
	default:
		return err
	}
}

// open opens a regular file under the root, from memory when it is cached.
// The Stat before Open keeps a FIFO (whose open blocks) or a device from ever
// being opened, and tells whether the cached copy is still the file; the
// Stat after Open catches a file swapped in between.
func open(c config, rel string) (io.ReadSeekCloser, int64, error) {
	fi, err := c.root.Stat(rel)
	if err != nil {
		c.memory.forget(rel)
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		c.memory.forget(rel)
		return nil, 0, fmt.Errorf("%s: %w: not a regular file (%s)", rel, os.ErrPermission, fi.Mode().Type())
	}
	if b, ok := c.memory.get(c.root, rel, fi); ok {
		return inMemory{bytes.NewReader(b)}, int64(len(b)), nil
	}
	f, err := c.root.Open(rel)
	if err != nil {
		return nil, 0, err
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w: not a regular file (%s)", rel, os.ErrPermission, fi.Mode().Type())
	}
	return f, fi.Size(), nil
}

// writeHandler refuses every write request (WRQ). A nil handler would do the
// same on the wire; this one also logs and counts the attempt, and gives the
// library a recognisable error so the hook does not report it twice.
func (s *Server) writeHandler(c config) func(string, io.WriterTo) error {
	return func(name string, wt io.WriterTo) error {
		t := Transfer{Path: name, Write: true, Size: -1, Outcome: Denied,
			Err: errors.New("write request to a read-only server")}
		if it, ok := wt.(pintftp.IncomingTransfer); ok {
			t.Client = addrPort(it.RemoteAddr())
		}
		s.report(c.log, t)
		return &wireError{msg: msgReadOnly, cause: t.Err}
	}
}

// inMemory is a cached file's contents, closed like a file.
type inMemory struct{ *bytes.Reader }

func (inMemory) Close() error { return nil }

// abortReader reads the served file and ends the transfer when Serve's
// context is cancelled, so shutdown does not wait for whole files. Read
// errors reach the client as a fixed text; the cause stays for the log.
// It is an io.Seeker, so pin/tftp fills in tsize (RFC 2349) itself.
type abortReader struct {
	ctx context.Context
	f   io.ReadSeeker
}

func (r abortReader) Read(p []byte) (int, error) {
	if r.ctx.Err() != nil {
		return 0, &wireError{msg: msgShutdown, cause: errShutdown}
	}
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = &wireError{msg: msgReadErr, cause: err}
	}
	return n, err
}

func (r abortReader) Seek(offset int64, whence int) (int64, error) {
	return r.f.Seek(offset, whence)
}

func addrPort(a net.UDPAddr) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
}
