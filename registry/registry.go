package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// Registry applies the lifecycle to a Store: every event is one atomic
// Store.Update, so two requests for one machine (an agent's report racing a
// reinstall) are serialised and each sees the other's result. Set the
// fields before first use; a Registry is safe for concurrent use.
type Registry struct {
	// Store keeps the records. Required.
	Store Store
	// MaxAttempts is how many attempts in a row may fail before a host is
	// failed. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// TokenTTL is the lifetime of an install token. Zero means
	// DefaultTokenTTL.
	TokenTTL time.Duration
	// Now is the clock; nil means time.Now. Times are stored in UTC.
	Now func() time.Time
	// Key is the secret install tokens are derived from (any length; 32
	// random bytes is right). Nil means a random key made at first use,
	// which is enough: tokens are checked against their stored digests,
	// not the key, so a new key after a restart only means that a pending
	// machine's next script carries a new token.
	Key []byte
	// Rand is the source of that random key; nil means crypto/rand.
	Rand io.Reader
	// Log receives one line per transition. Nil discards.
	Log *slog.Logger
	// Notify, if set, is called after every committed change with the
	// record and the attempt the change wrote, for live views. It runs on
	// the caller's goroutine and must not block.
	Notify func(Change)
	// MaxDiscovered caps the discovered records: at the cap a new unknown
	// MAC evicts the least recently seen one (discovered.go). Zero means
	// DefaultMaxDiscovered.
	MaxDiscovered int
	// DiscoveredTTL is how long Sweep keeps a discovered record that is
	// not seen again. Zero means DefaultDiscoveredTTL.
	DiscoveredTTL time.Duration
	// OnForget, if set, is called with the number of discovered records
	// removed and why (ForgetCap, ForgetExpired, ForgetAdmin), for
	// metrics. It must not block.
	OnForget func(reason string, n int)
	// Hold, if set, is asked before a pending host in the profiles is
	// given its installer: a non-empty answer (why) holds it back, with
	// BootHeld, no token and no attempt. pendingVersion is the version a
	// reinstall asked for, "" for the profile's. The appliance holds the
	// hosts whose version's image is missing or not what the catalog
	// says (docs/DESIGN.md, "Checks before damage"). It must be safe for
	// concurrent use and quick.
	Hold func(mac net.HardwareAddr, pendingVersion string) string

	disc    discoveredIndex
	keyOnce sync.Once
	key     []byte
	keyErr  error
}

// Change is a committed change of a host's record.
type Change struct {
	// Event names what happened: "boot", "start", "done", "failed",
	// "superseded" (a running attempt ended by a reinstall request),
	// "reinstall" or "power" (a power action through the BMC).
	Event string
	Host  HostRecord
	// Attempt is the attempt the change started or ended, or nil.
	Attempt *Attempt
}

// Decision is what a machine asking for its iPXE script boots.
type Decision struct {
	Kind BootKind
	// Token is the install token for the kernel command line, with
	// BootInstall only.
	Token string
	// Attempt is the attempt the token is for.
	Attempt int
	// Message says why, with BootFailed, BootHeld and BootUnknown.
	Message string
	// Host is the record after the boot; its MAC is empty when the machine
	// is unknown and has no record.
	Host HostRecord
}

// Boot records that the machine mac asked for its iPXE script and decides
// what it boots. known says whether it is in the profiles (hostname is its
// name there); discovery whether unknown machines are recorded.
//
// Most script requests change nothing (the same machine asking again, an
// installed machine booting its disk within LastBootResolution of its
// previous boot, an unknown machine): Boot decides those from a read and
// writes nothing, so a rack booting at once does not queue on commits. The
// rest are decided again inside one Store.Update.
func (r *Registry) Boot(ctx context.Context, mac net.HardwareAddr, hostname string, known, discovery bool) (Decision, error) {
	key, err := r.tokenKey()
	if err != nil {
		return Decision{}, err
	}
	m := mac.String()
	tokens := &tokenMinter{key: key, mac: m}
	in := bootIn{known: known, hostname: hostname, discovery: discovery, now: r.now(), mint: tokens.digest}
	if r.Hold != nil {
		in.hold = func(v string) string { return r.Hold(mac, v) }
	}
	h, err := r.Store.Host(ctx, m)
	exists := err == nil
	if errors.Is(err, ErrNotFound) {
		h, err = HostRecord{MAC: m}, nil
	}
	if err != nil {
		return Decision{}, err
	}
	next, out := boot(h, exists, in, r.limits())
	wasDiscovered := exists && h.State == StateDiscovered
	if !exists && next.State == StateDiscovered {
		// A new discovered record: make room for it under the cap.
		victim, err := r.admit(ctx, m, in.now)
		if err != nil {
			return Decision{}, err
		}
		if victim != "" {
			if err := r.evict(ctx, victim, in.now); err != nil {
				return Decision{}, err
			}
		}
	}
	if out.changed {
		next, err = r.Store.Update(ctx, m, func(h *HostRecord, exists bool) (*Attempt, error) {
			*h, out = boot(*h, exists, in, r.limits())
			return out.ended, nil
		})
		if err != nil {
			return Decision{}, err
		}
	}
	r.track(next, wasDiscovered)
	d := Decision{Kind: out.kind, Message: out.message, Host: next}
	if out.kind == BootInstall {
		d.Token, d.Attempt = tokens.token(next.Token.Attempt, next.Token.Expires), next.Token.Attempt
	}
	if next.State == "" {
		d.Host = HostRecord{}
	}
	if out.ended != nil {
		r.changed("failed", next, out.ended)
	}
	if out.changed {
		r.changed("boot", next, nil)
	}
	// Every script request passes here: its arguments are built only for a
	// line that is written.
	if lg := r.log(); lg.Enabled(ctx, slog.LevelInfo) {
		lg.Info("machine booted", "mac", m, "boot", string(out.kind), "state", string(next.State), "attempt", d.Attempt, "recorded", out.changed)
	}
	return d, nil
}

// Authenticate checks an install token for mac and returns its record. The
// error wraps ErrUnauthorized (with the reason, for logs) or is a store
// failure.
func (r *Registry) Authenticate(ctx context.Context, mac net.HardwareAddr, token string) (HostRecord, error) {
	return r.authenticate(ctx, mac, token, nil)
}

// AuthenticateDone is Authenticate for a success report: it also takes
// the token of the final report the host accepted last, for a short
// while, so that the same report sent again, its answer lost (the
// appliance that took it may have died since), gets to Done (which
// answers it as it answered it first) instead of a refusal.
func (r *Registry) AuthenticateDone(ctx context.Context, mac net.HardwareAddr, token string) (HostRecord, error) {
	return r.authenticate(ctx, mac, token, func(h HostRecord, exists bool, now time.Time) bool {
		return doneAgain(h, exists, token, "", now) || failedAgain(h, exists, token, "", now)
	})
}

// AuthenticateFailed is AuthenticateDone for a failure report, which gets
// to Fail.
func (r *Registry) AuthenticateFailed(ctx context.Context, mac net.HardwareAddr, token string) (HostRecord, error) {
	return r.authenticate(ctx, mac, token, func(h HostRecord, exists bool, now time.Time) bool {
		return failedAgain(h, exists, token, "", now)
	})
}

// authenticate is Authenticate that also takes what again accepts, if
// again is not nil.
func (r *Registry) authenticate(ctx context.Context, mac net.HardwareAddr, token string, again func(h HostRecord, exists bool, now time.Time) bool) (HostRecord, error) {
	h, err := r.Store.Host(ctx, mac.String())
	exists := err == nil
	if errors.Is(err, ErrNotFound) {
		h, err = HostRecord{MAC: mac.String()}, nil
	}
	if err != nil {
		return HostRecord{}, err
	}
	now := r.now()
	if err := authorize(h, exists, token, now); err != nil {
		if again != nil && again(h, exists, now) {
			return h, nil
		}
		return HostRecord{}, err
	}
	return h, nil
}

// Install describes what an attempt installs, from the plan its agent is
// given, for the attempt's record.
type Install struct {
	Version       Version
	ImageSHA256   string
	ProfileDigest string
	// ImageRawSize is the image's decompressed size, 0 when unknown.
	ImageRawSize int64
}

// Start records that the agent of mac fetched its plan: the host is
// installing and its attempt begins. Fetching again while installing
// changes nothing. It returns the running attempt.
func (r *Registry) Start(ctx context.Context, mac net.HardwareAddr, token string, p Install) (Attempt, error) {
	now := r.now()
	var started *Attempt
	h, err := r.Store.Update(ctx, mac.String(), func(h *HostRecord, exists bool) (*Attempt, error) {
		if err := authorize(*h, exists, token, now); err != nil {
			return nil, err
		}
		next, a, err := start(*h, startIn{version: p.Version, imageSHA256: p.ImageSHA256, profileDigest: p.ProfileDigest, rawSize: p.ImageRawSize, now: now}, r.limits())
		*h, started = next, a
		return a, err
	})
	if err != nil {
		return Attempt{}, err
	}
	if started != nil {
		r.changed("start", h, started)
		r.log().Info("install started", "mac", h.MAC, "attempt", h.Attempt, "version", p.Version.Name)
	}
	return *h.Current, nil
}

// Report is an agent's final report.
type Report struct {
	// SHA256 and Bytes: the image the disk holds, with success.
	SHA256  string
	Bytes   int64
	WriteMS int64
	// Written, Fetched and Reused: what the agent wrote of it (0: all of
	// it), the compressed bytes it received, and the bytes it took from
	// the disk instead (agentapi.Done).
	Written, Fetched, Reused int64
	// FetchedPeers is the part of Fetched that came from peers.
	FetchedPeers int64
	// Phase and Error: where and why it failed, with failure.
	Phase string
	Error string
}

// Done records the agent's success: the host is installed with the
// attempt's version. A digest other than the plan's fails the attempt and
// returns an error wrapping ErrDigest. The same report sent again with
// the same token, its answer lost, gets the same answer and records
// nothing: an agent retries at another appliance of the fleet when the
// one it reported to died before answering.
func (r *Registry) Done(ctx context.Context, mac net.HardwareAddr, token string, rep Report) (HostRecord, error) {
	now := r.now()
	var ended *Attempt
	var ok, again bool
	h, err := r.Store.Update(ctx, mac.String(), func(h *HostRecord, exists bool) (*Attempt, error) {
		again = false // fn may run more than once
		if err := authorize(*h, exists, token, now); err != nil {
			// The agent did not get the first answer: the same one.
			key := doneKey(rep.SHA256)
			switch {
			case doneAgain(*h, exists, token, key, now):
				again, ok = true, true
				return nil, nil
			case failedAgain(*h, exists, token, key, now):
				again = true
				return nil, nil
			}
			return nil, err
		}
		next, a, good, err := done(*h, doneIn{sha256: rep.SHA256, bytes: rep.Bytes, writeMS: rep.WriteMS,
			written: rep.Written, fetched: rep.Fetched, reused: rep.Reused, peers: rep.FetchedPeers, now: now}, r.limits())
		*h, ended, ok = next, a, good
		return a, err
	})
	if err != nil {
		return HostRecord{}, err
	}
	switch {
	case again && ok:
		r.log().Info("install done reported again: the first report was accepted", "mac", h.MAC, "attempt", h.Attempt)
		return h, nil
	case again:
		r.log().Info("install done reported again: the first report failed the attempt", "mac", h.MAC, "attempt", h.Attempt)
		return h, ErrDigest
	}
	if !ok {
		r.changed("failed", h, ended)
		r.log().Warn("install failed", "mac", h.MAC, "attempt", ended.Number, "version", ended.Version.Name, "phase", ended.Phase, "err", ended.Error)
		return h, ErrDigest
	}
	r.changed("done", h, ended)
	r.log().Info("install done", "mac", h.MAC, "attempt", ended.Number, "version", ended.Version.Name, "bytes", rep.Bytes)
	return h, nil
}

// Writing records that the agent of mac reported writing its image (image
// progress with bytes done), once per attempt: the first such report is
// written, later ones are not. A success report needs it (see Done).
func (r *Registry) Writing(ctx context.Context, mac net.HardwareAddr, token string) error {
	now := r.now()
	_, err := r.Store.Update(ctx, mac.String(), func(h *HostRecord, exists bool) (*Attempt, error) {
		if err := authorize(*h, exists, token, now); err != nil {
			return nil, err
		}
		*h = writing(*h, now)
		return nil, nil
	})
	return err
}

// Fail records the agent's failure: the host is pending for another
// attempt, or failed after MaxAttempts. A host still pending (its agent
// failed before, or while, fetching the plan) fails an attempt too. The
// same report sent again with the same token, its answer lost, gets the
// host as it is and records nothing (see Done).
func (r *Registry) Fail(ctx context.Context, mac net.HardwareAddr, token string, rep Report) (HostRecord, error) {
	now := r.now()
	var ended *Attempt
	var again bool
	h, err := r.Store.Update(ctx, mac.String(), func(h *HostRecord, exists bool) (*Attempt, error) {
		again = false // fn may run more than once
		if err := authorize(*h, exists, token, now); err != nil {
			if failedAgain(*h, exists, token, failedKey(rep.Phase, rep.Error), now) {
				again = true
				return nil, nil
			}
			return nil, err
		}
		next, a, err := fail(*h, failIn{phase: rep.Phase, err: rep.Error, now: now}, r.limits())
		*h, ended = next, a
		return a, err
	})
	if err != nil {
		return HostRecord{}, err
	}
	if again {
		r.log().Info("install failure reported again: the first report was recorded", "mac", h.MAC, "attempt", h.Attempt)
		return h, nil
	}
	r.changed("failed", h, ended)
	r.log().Warn("install failed", "mac", h.MAC, "attempt", ended.Number, "state", string(h.State), "phase", rep.Phase, "err", rep.Error)
	return h, nil
}

// AppendLog adds lines to the log of the agent of mac: the running attempt,
// or the one about to start when the agent logs before fetching its plan.
// It returns the attempt ID and the batch's sequence number. Lines sent
// again (again: their first sending got no answer, agentapi.Log.Again)
// that already end the attempt's log are not stored twice: seq is then 0.
func (r *Registry) AppendLog(ctx context.Context, mac net.HardwareAddr, token string, lines []string, again bool) (id, seq int, err error) {
	h, err := r.Authenticate(ctx, mac, token)
	if err != nil {
		return 0, 0, err
	}
	id = LogID(h)
	if again && len(lines) > 0 {
		// Rare (an appliance died, or answered 5xx), so the read of
		// the log costs nothing in the common case.
		tail, err := r.Store.Log(ctx, h.MAC, id, 0)
		if err != nil {
			return 0, 0, err
		}
		if n := len(tail.Lines); n >= len(lines) && slices.Equal(tail.Lines[n-len(lines):], lines) {
			return id, 0, nil
		}
	}
	seq, err = r.Store.AppendLog(ctx, h.MAC, id, lines)
	return id, seq, err
}

// LogID is the attempt whose log an agent of h writes now, and which a
// follower of h's log reads: the running attempt, else the next one.
func LogID(h HostRecord) int {
	if h.Current != nil {
		return h.Current.ID
	}
	if h.State == StatePending && h.Token != nil {
		return h.LastID + 1
	}
	return h.LastID
}

// ReinstallRequest is an admin's request to install a machine again.
type ReinstallRequest struct {
	Reason string
	// Version overrides the profile's version for the install, or "".
	Version string
	// By says who asked, e.g. "admin API from 192.0.2.9".
	By string
	// Hostname is the host's name in the profiles, or "".
	Hostname string
	// WipeData lets the first attempt destroy preserved partitions
	// (Reinstall.WipeData).
	WipeData bool
}

// Reinstall makes mac pending again, whatever its state, recording who
// asked, when and why. A running attempt is superseded.
func (r *Registry) Reinstall(ctx context.Context, mac net.HardwareAddr, req ReinstallRequest) (HostRecord, error) {
	now := r.now()
	var ended *Attempt
	wasDiscovered := false
	h, err := r.Store.Update(ctx, mac.String(), func(h *HostRecord, exists bool) (*Attempt, error) {
		wasDiscovered = exists && h.State == StateDiscovered
		next, a := reinstall(*h, exists, reinstallIn{reason: req.Reason, version: req.Version, by: req.By, hostname: req.Hostname, wipeData: req.WipeData, now: now})
		*h, ended = next, a
		return a, nil
	})
	if err != nil {
		return HostRecord{}, err
	}
	r.track(h, wasDiscovered)
	if ended != nil {
		r.changed("superseded", h, ended)
	}
	r.changed("reinstall", h, nil)
	r.log().Info("reinstall requested", "mac", h.MAC, "version", req.Version, "reason", req.Reason, "by", req.By, "wipe_data", req.WipeData)
	return h, nil
}

func (r *Registry) changed(event string, h HostRecord, a *Attempt) {
	if r.Notify != nil {
		r.Notify(Change{Event: event, Host: h, Attempt: a})
	}
}

func (r *Registry) limits() limits {
	l := limits{max: r.MaxAttempts, ttl: r.TokenTTL}
	if l.max <= 0 {
		l.max = DefaultMaxAttempts
	}
	if l.ttl <= 0 {
		l.ttl = DefaultTokenTTL
	}
	return l
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// tokenKey is Key, or the random key made at first use.
func (r *Registry) tokenKey() ([]byte, error) {
	if r.Key != nil {
		return r.Key, nil
	}
	r.keyOnce.Do(func() { r.key, r.keyErr = newKey(r.rand()) })
	return r.key, r.keyErr
}

func (r *Registry) rand() io.Reader {
	if r.Rand != nil {
		return r.Rand
	}
	return rand.Reader
}

func (r *Registry) log() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}
