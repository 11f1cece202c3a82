package registry

import (
	"context"
	"errors"
)

// Errors of the registry, checked with errors.Is.
var (
	// ErrNotFound: no record for this MAC. A Store returns it only when it
	// knows the record is absent, never for a failure to read.
	ErrNotFound = errors.New("registry: host not found")
	// ErrUnauthorized: the install token is missing, wrong, expired, or
	// for another machine or attempt.
	ErrUnauthorized = errors.New("registry: install token refused")
	// ErrState: the request does not fit the machine's state, such as
	// "done" from a machine that is not installing.
	ErrState = errors.New("registry: not allowed in this state")
	// ErrDigest: the agent reported an image digest other than the plan's;
	// the attempt is recorded as failed.
	ErrDigest = errors.New("registry: image digest differs from the plan")
	// ErrReport: a success report inconsistent with what the agent
	// reported while writing (no image progress seen, a byte count other
	// than the image's); it is refused and changes nothing.
	ErrReport = errors.New("registry: report inconsistent with the install")
)

// MaxLogBytes bounds the agent log kept per attempt, counted in stored
// (JSON-encoded) bytes. When a log grows past it the oldest batches are
// dropped: the end of a log, where an install fails, matters most.
const MaxLogBytes = 1 << 20

// Store keeps host records, attempts and agent logs. Implementations must
// be safe for concurrent use, hand out copies (a caller's changes to a
// returned value never reach the store), and make every write durable
// before they return nil: an acknowledged write survives a crash.
//
// Every method honours ctx as far as the backend can; an embedded store may
// ignore it.
type Store interface {
	// Host returns the record of mac, or an error wrapping ErrNotFound.
	Host(ctx context.Context, mac string) (HostRecord, error)
	// Hosts returns every record, ordered by MAC.
	Hosts(ctx context.Context) ([]HostRecord, error)
	// Update changes the record of mac atomically. fn gets the record (or,
	// with exists false, a zero record with MAC set) and may change it; it
	// may return an attempt to insert or replace (keyed by MAC and ID) in
	// the same transaction. If fn returns an error nothing is written and
	// Update returns that error. A record that fn leaves as it was is not
	// written (nor created). Update returns the record as stored. fn may be
	// called more than once (a backend may retry on conflict), so it must
	// have no side effects beyond its arguments and its results.
	Update(ctx context.Context, mac string, fn func(h *HostRecord, exists bool) (*Attempt, error)) (HostRecord, error)
	// History returns the host's attempts ordered by ID, without logs; an
	// unknown host has none.
	History(ctx context.Context, mac string) ([]Attempt, error)
	// AppendLog appends a batch of lines to the log of attempt id of mac
	// and returns the batch's sequence number (1, 2, …). The log is
	// bounded by MaxLogBytes.
	AppendLog(ctx context.Context, mac string, id int, lines []string) (seq int, err error)
	// Log returns the lines of the batches after sequence number after
	// (0: all) of attempt id of mac.
	Log(ctx context.Context, mac string, id, after int) (LogTail, error)
	// Delete removes the record of mac, with its attempts and logs, if fn
	// (given the record as stored, in the same transaction) returns true,
	// and reports whether it did. An absent record is not an error: it
	// returns false. Like Update's, fn may be called more than once.
	Delete(ctx context.Context, mac string, fn func(h HostRecord) bool) (bool, error)
	// PutBlob stores value under key in the store's space for appliance
	// state beside the hosts (staged rollouts); a nil value deletes the
	// key. It returns once the value is stored.
	PutBlob(ctx context.Context, key string, value []byte) error
	// Blobs returns every key of that space that starts with prefix, with
	// its value.
	Blobs(ctx context.Context, prefix string) (map[string][]byte, error)
	// Close releases the store.
	Close() error
}

// LogTail is part of an attempt's log.
type LogTail struct {
	Lines []string `json:"lines"`
	// Last is the sequence number of the last batch returned, or the after
	// given when there is none.
	Last int `json:"last"`
	// Truncated reports that the oldest lines were dropped to keep the log
	// within MaxLogBytes.
	Truncated bool `json:"truncated,omitempty"`
}
