package tftp

import (
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	pintftp "github.com/pin/tftp/v3"
)

// running is what the library's hook learns about a transfer that the read
// handler does not: the negotiated block size and the datagram counts.
type running struct {
	done        bool
	blockSize   int
	retransmits int
}

// track registers a transfer about to enter ReadFrom. pin/tftp calls its
// Hook from inside ReadFrom, on the same goroutine, but gives it only a
// TransferStats value; the client's address and port are the only link back
// to the transfer. Two transfers share a key only when a client resends its
// RRQ from the same port; the library then runs both, and their statistics
// may be swapped, which is harmless: same client, same file.
func (s *Server) track(key netip.AddrPort) *running {
	r := &running{}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running == nil {
		s.running = make(map[netip.AddrPort][]*running)
	}
	s.running[key] = append(s.running[key], r)
	return r
}

// untrack removes r and returns what the hook stored in it.
func (s *Server) untrack(key netip.AddrPort, r *running) running {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.running[key]
	for i, x := range rs {
		if x == r {
			rs = append(rs[:i], rs[i+1:]...)
			break
		}
	}
	if len(rs) == 0 {
		delete(s.running, key)
	} else {
		s.running[key] = rs
	}
	return *r
}

// hook implements pintftp.Hook.
type hook struct {
	s   *Server
	log *slog.Logger
}

func (h hook) OnSuccess(st pintftp.TransferStats) { h.record(st, true) }

func (h hook) OnFailure(st pintftp.TransferStats, err error) {
	if h.record(st, false) {
		return
	}
	var we *wireError
	switch {
	case errors.As(err, &we):
		// A refusal by our own handler, already reported.
	case outOfFiles(err):
		// The library could not open the transfer's socket: the process
		// is out of file descriptors, and every client is refused until
		// some close. Worth an operator's eye, unlike the case below; at
		// most one line a second, with the count since the last.
		n := h.s.noFiles.Add(1)
		now, last := time.Now().UnixNano(), h.s.noFilesAt.Load()
		if now-last >= int64(time.Second) && h.s.noFilesAt.CompareAndSwap(last, now) {
			h.s.noFiles.Add(-n)
			h.log.Error("tftp cannot open transfer sockets: out of file descriptors (raise LimitNOFILE, or lower --http-max-conns)",
				"requests_refused", n, "err", err)
		}
	case st.RemoteAddr == nil:
		// The library's read loop got a packet on the server port that is
		// not a valid RRQ or WRQ: garbage, or a late ACK/ERROR from a client
		// that lost track of its transfer ID. Nothing was started.
		h.log.Debug("tftp ignored bad packet on server port", "err", err)
	default:
		h.log.Debug("tftp transfer ended after its handler", "ip", st.RemoteAddr.String(),
			"path", st.Filename, "err", err)
	}
}

// record stores st in the transfer it belongs to and reports whether there
// was one.
func (h hook) record(st pintftp.TransferStats, ok bool) bool {
	ip, valid := netip.AddrFromSlice(st.RemoteAddr)
	if !valid {
		return false
	}
	key := netip.AddrPortFrom(ip.Unmap(), uint16(st.Tid))
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	for _, r := range h.s.running[key] {
		if r.done {
			continue
		}
		r.done = true
		r.blockSize = 512
		if v, err := strconv.Atoi(st.Opts["blksize"]); err == nil {
			r.blockSize = v
		}
		// Sent minus acknowledged is the retransmissions, plus, when the
		// transfer failed, the one last packet that was never acknowledged.
		r.retransmits = st.DatagramsSent - st.DatagramsAcked
		if !ok && r.retransmits > 0 {
			r.retransmits--
		}
		return true
	}
	return false
}

// outOfFiles reports whether err is the process or the system running out
// of file descriptors. The library may wrap the cause in text only.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || strings.Contains(err.Error(), "too many open files")
}
