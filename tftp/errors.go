package tftp

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
)

// Texts sent to clients in ERROR packets. pin/tftp v3.2.0 sends every error
// a handler returns as ERROR code 1 ("File not found", RFC 1350) with the
// error's text as the message: the code cannot be chosen, so the text says
// what happened. It is fixed wording, never an OS error that could reveal
// server paths.
const (
	msgNotFound = "file not found"
	msgDenied   = "access violation"
	msgBusy     = "server busy, retry later"
	msgLimited  = "too many transfers from your address"
	msgReadOnly = "read-only server"
	msgReadErr  = "read error"
	msgShutdown = "server shutting down"
)

// wireError is an error whose text is what the client is told, wrapping
// the cause that goes to the log.
type wireError struct {
	msg   string
	cause error
}

func (e *wireError) Error() string { return e.msg }
func (e *wireError) Unwrap() error { return e.cause }

// errShutdown ends transfers when Serve's context is cancelled.
var errShutdown = errors.New("tftp: server shutting down")

// classifyOpen sorts an error from opening a file under the root.
func classifyOpen(err error) Outcome {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return NotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ELOOP), isEscape(err):
		return Denied
	default:
		return Failed
	}
}

// isEscape reports whether err is os.Root refusing a path that leaves the
// root through a symbolic link. The os package does not export that error
// (Go 1.26), so its text is matched; TestServeEscapes would catch a rename.
func isEscape(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}

// peerError is an ERROR packet the client sent during a transfer.
type peerError struct {
	block, code int
	msg         string
}

func (e *peerError) Error() string {
	return fmt.Sprintf("client sent ERROR %d at block %d: %q", e.code, e.block, e.msg)
}

// asPeerError recognises the error pin/tftp's sender returns when the client
// sends an ERROR packet, "sending block %d: code=%d, error: %s" (sender.go,
// v3.2.0; the message keeps the packet's NUL). The library has no typed
// error for it; TestProbe and TestBusy break if the wording changes.
func asPeerError(err error) (*peerError, bool) {
	if err == nil {
		return nil, false
	}
	var e peerError
	head, msg, found := strings.Cut(err.Error(), ", error: ")
	if !found {
		return nil, false
	}
	if n, _ := fmt.Sscanf(head, "sending block %d: code=%d", &e.block, &e.code); n != 2 {
		return nil, false
	}
	e.msg = strings.TrimRight(msg, "\x00")
	return &e, true
}

// errCodeOptionNegotiation is the ERROR code a client sends to refuse an
// OACK (RFC 2347); EDK2 sends it to end its tsize probe.
const errCodeOptionNegotiation = 8
