package tftp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
)

// Outcome is how a request ended.
type Outcome int

const (
	// OK: the whole file was sent and every block acknowledged.
	OK Outcome = iota
	// Probe: the client read the file size from the OACK and then ended the
	// transfer with ERROR 8 (RFC 2347, option negotiation ended). EDK2's PXE
	// client always does this before the real download; it is not a failure.
	Probe
	// Aborted: the client sent an ERROR packet during the transfer, for
	// example a user interrupt or an "unknown transfer ID" after a duplicate
	// read request.
	Aborted
	// NotFound: the file does not exist under the root. shim and GRUB probe
	// for several optional files, so this is routine.
	NotFound
	// Denied: the name broke the path rules, the file was a directory, a
	// device or a symbolic link leaving the root, or the request was a write.
	Denied
	// Busy: MaxTransfers transfers were already running.
	Busy
	// Failed: the client stopped answering (retries exhausted), the file
	// could not be read, or the server shut down mid-transfer.
	Failed
	// Limited: the client's address already ran MaxPerClient transfers.
	Limited
)

var outcomeNames = [...]string{
	OK:       "ok",
	Probe:    "probe",
	Aborted:  "aborted",
	NotFound: "not-found",
	Denied:   "denied",
	Busy:     "busy",
	Failed:   "failed",
	Limited:  "limited",
}

func (o Outcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return "unknown"
	}
	return outcomeNames[o]
}

// level is the log level of a transfer's line: routine firmware behaviour is
// quiet, what an operator should look at is a warning. Nothing is an error:
// a client going away is not a fault of the server.
func (o Outcome) level() slog.Level {
	switch o {
	case Probe:
		return slog.LevelDebug
	case OK, Aborted, NotFound:
		return slog.LevelInfo
	default:
		return slog.LevelWarn
	}
}

func (o Outcome) message() string {
	switch o {
	case OK:
		return "tftp transfer done"
	case Probe:
		return "tftp tsize probe ended by client"
	case Aborted:
		return "tftp transfer aborted by client"
	case NotFound:
		return "tftp file not found"
	case Denied:
		return "tftp request denied"
	case Busy:
		return "tftp request refused: server busy"
	case Limited:
		return "tftp request refused: too many transfers from this address"
	default:
		return "tftp transfer failed"
	}
}

// Transfer describes one request once it has ended. It is what Server logs
// and what it passes to OnTransfer.
type Transfer struct {
	Client netip.AddrPort // the client's address and transfer ID (port)
	Path   string         // the file name exactly as the client sent it
	Write  bool           // a write request (always Denied)

	Outcome Outcome
	Err     error // why, when Outcome is not OK; for logs, not for display to clients

	Size      int64 // size of the file opened; -1 if none was opened
	Bytes     int64 // bytes read from the file and sent (the last block may be unacknowledged)
	BlockSize int   // negotiated blksize (RFC 2348), 512 without the option; 0 if no file was opened

	// Retransmits counts DATA or OACK packets the server had to send again
	// because no acknowledgement came within Timeout.
	Retransmits int
	Duration    time.Duration

	// quiet: a refusal after the first of its burst, counted but not
	// logged (see MaxPerClient).
	quiet bool
}

// Stats counts the requests a Server has answered, by Outcome, since it was
// created. Active is a gauge: transfers running now.
type Stats struct {
	OK, Probe, Aborted, NotFound, Denied, Busy, Failed, Limited uint64

	Bytes  uint64 // file bytes sent, whatever the outcome
	Active int64  // transfers holding one of MaxTransfers slots
}

// counters backs Stats; one atomic per field so the hot path takes no lock.
type counters struct {
	byOutcome [len(outcomeNames)]atomic.Uint64
	bytes     atomic.Uint64
	active    atomic.Int64
}

// Stats returns the counters. It is safe to call at any time, including
// while Serve runs.
func (s *Server) Stats() Stats {
	c := &s.counters
	return Stats{
		OK:       c.byOutcome[OK].Load(),
		Probe:    c.byOutcome[Probe].Load(),
		Aborted:  c.byOutcome[Aborted].Load(),
		NotFound: c.byOutcome[NotFound].Load(),
		Denied:   c.byOutcome[Denied].Load(),
		Busy:     c.byOutcome[Busy].Load(),
		Failed:   c.byOutcome[Failed].Load(),
		Limited:  c.byOutcome[Limited].Load(),
		Bytes:    c.bytes.Load(),
		Active:   c.active.Load(),
	}
}

// report accounts for a finished request: counters, one log line, the hook.
func (s *Server) report(log *slog.Logger, t Transfer) {
	s.counters.byOutcome[t.Outcome].Add(1)
	if t.Bytes > 0 {
		s.counters.bytes.Add(uint64(t.Bytes))
	}
	if t.quiet {
		if s.OnTransfer != nil {
			s.OnTransfer(t)
		}
		return
	}
	attrs := []slog.Attr{
		slog.String("ip", t.Client.Addr().String()),
		slog.String("path", t.Path),
		slog.String("outcome", t.Outcome.String()),
	}
	// Identify reads the neighbour table: only when the line is written.
	if s.Identify != nil && log.Enabled(context.Background(), t.Outcome.level()) {
		if mac := s.Identify(t.Client.Addr()); mac != nil {
			attrs = append(attrs, slog.String("mac", mac.String()))
		}
	}
	if t.Write {
		attrs = append(attrs, slog.Bool("write", true))
	}
	if t.Size >= 0 {
		attrs = append(attrs,
			slog.Int64("size", t.Size),
			slog.Int64("bytes", t.Bytes),
			slog.Int("blksize", t.BlockSize),
			slog.Int("retransmits", t.Retransmits))
	}
	attrs = append(attrs, slog.Duration("duration", t.Duration))
	if t.Err != nil {
		attrs = append(attrs, slog.String("err", t.Err.Error()))
	}
	log.LogAttrs(context.Background(), t.Outcome.level(), t.Outcome.message(), attrs...)
	if s.OnTransfer != nil {
		s.OnTransfer(t)
	}
}
