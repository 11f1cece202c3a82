package registry

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/rackboot/rackboot/agentapi"
)

// This file is the state machine of docs/DESIGN.md, as pure functions from a
// record (and an event) to the next record and the attempt to write. They
// read no clock and no randomness: the caller passes both in, so every
// transition is tested as a table (lifecycle_test.go). Registry runs them
// inside Store.Update.

// BootKind is what a machine asking for its iPXE script is to boot.
type BootKind string

// What a machine boots.
const (
	// BootUnknown: not in the profiles and discovery is off (or a pending
	// host that left the profiles): nothing.
	BootUnknown BootKind = "unknown"
	// BootDiscovery: not in the profiles, discovery is on: the discovery
	// installer, without a token.
	BootDiscovery BootKind = "discovery"
	// BootInstall: the installer, with a fresh install token.
	BootInstall BootKind = "install"
	// BootLocal: the installed system on the local disk.
	BootLocal BootKind = "local"
	// BootFailed: nothing destructive; the console says why.
	BootFailed BootKind = "failed"
	// BootHeld: a pending host whose version cannot be installed now
	// (Registry.Hold: its image is missing or not what the catalog says):
	// nothing, and no attempt starts; the console says why, and the
	// machine asks again later.
	BootHeld BootKind = "held"
)

// Defaults of the lifecycle's limits.
const (
	DefaultMaxAttempts = 3
	// DefaultTokenTTL is how long an install token stays valid after it
	// was minted, and again after the agent fetched its plan. Large images
	// over slow links take tens of minutes.
	DefaultTokenTTL = 2 * time.Hour
	// LastBootResolution is how stale HostRecord.LastBoot may be: a boot
	// within it of the recorded one is not written. A script request that
	// changes nothing else then writes nothing at all, so a rack booting
	// at once (or iPXE fetching a script twice) costs reads, not commits.
	LastBootResolution = 30 * time.Second
)

// limits are the policy the transitions apply.
type limits struct {
	max int           // attempts in a row before failed
	ttl time.Duration // install token lifetime
}

// bootIn is what boot knows besides the record.
type bootIn struct {
	known     bool // the MAC is in the profiles
	hostname  string
	discovery bool
	now       time.Time
	// mint returns the digest of the install token for an attempt that
	// expires then. It is deterministic (Registry derives tokens from a
	// key), so a token still valid is recognised and kept.
	mint func(attempt int, expires time.Time) string
	// hold says why the host may not install now, "" if it may
	// (Registry.Hold), given the version a reinstall asked for.
	hold func(pendingVersion string) string
}

// bootOut is what boot decided.
type bootOut struct {
	kind    BootKind
	message string   // why, for BootFailed and BootUnknown
	ended   *Attempt // the attempt the boot ended: rebooted during install
	changed bool     // the record differs from the one given: write it
}

// boot is a machine asking for its iPXE script.
func boot(h HostRecord, exists bool, in bootIn, l limits) (HostRecord, bootOut) {
	prev := h
	h, out := bootNext(h, exists, in, l)
	if out.changed = !reflect.DeepEqual(prev, h); out.changed {
		h.UpdatedAt = in.now
	}
	return h, out
}

func bootNext(h HostRecord, exists bool, in bootIn, l limits) (HostRecord, bootOut) {
	var out bootOut
	if !exists {
		switch {
		case in.known:
			h = HostRecord{MAC: h.MAC, State: StatePending, Since: in.now, Reason: "in the profiles, first seen at PXE boot"}
		case in.discovery:
			h = HostRecord{MAC: h.MAC, State: StateDiscovered, Since: in.now, Reason: "PXE-booted while discovery is on; not in the profiles"}
		default:
			return h, bootOut{kind: BootUnknown, message: "not in the profiles"}
		}
	}
	if d := in.now.Sub(h.LastBoot); d >= LastBootResolution || d < 0 {
		h.LastBoot = in.now
	}
	if in.known && in.hostname != "" {
		h.Hostname = in.hostname
	}
	if h.State == StateInstalling {
		// The agent never reported: the machine rebooted (or was reset)
		// in the middle of its install. That attempt failed.
		h, out.ended = failCurrent(h, in.now, "", "the machine PXE-booted again before its install finished (rebooted during install)", l)
	}
	if h.State == StateDiscovered && in.known {
		h.State, h.Since, h.Reason = StatePending, in.now, "added to the profiles after discovery"
	}
	switch h.State {
	case StateDiscovered:
		out.kind = BootUnknown
		if in.discovery {
			out.kind = BootDiscovery
		}
	case StatePending:
		if !in.known {
			out.kind, out.message = BootUnknown, "pending, but no longer in the profiles"
			break
		}
		if in.hold != nil {
			if why := in.hold(h.PendingVersion); why != "" {
				out.kind, out.message = BootHeld, why
				break
			}
		}
		// The token of the next attempt is kept while it has more than
		// half its lifetime left, so fetching the script again (iPXE
		// retrying, the machine reset before its agent ran) changes
		// nothing and writes nothing. A token minted under another key
		// (before a restart) is replaced: it could not be handed out
		// again. The attempt number does not move until an agent
		// fetches its plan; a token never outlives its attempt.
		next := h.Attempt + 1
		if t := h.Token; t == nil || t.Attempt != next || t.Expires.Sub(in.now) <= l.ttl/2 || t.SHA256 != in.mint(t.Attempt, t.Expires) {
			exp := in.now.Add(l.ttl)
			h.Token = &Token{SHA256: in.mint(next, exp), Attempt: next, Expires: exp}
		}
		out.kind = BootInstall
	case StateInstalled:
		out.kind = BootLocal
	case StateFailed:
		out.kind, out.message = BootFailed, h.Reason
	}
	return h, out
}

// startIn describes the plan an agent fetched.
type startIn struct {
	version       Version
	imageSHA256   string
	profileDigest string
	rawSize       int64
	now           time.Time
}

// start is an agent fetching its plan: pending becomes installing and the
// attempt begins. Fetching again while installing (an agent retrying a GET)
// changes nothing.
func start(h HostRecord, in startIn, l limits) (HostRecord, *Attempt, error) {
	switch h.State {
	case StateInstalling:
		return h, nil, nil
	case StatePending:
	default:
		return h, nil, fmt.Errorf("%w: %s", ErrState, h.State)
	}
	why := "first install"
	if h.Reinstall != nil {
		why = "reinstall"
		if h.Reinstall.Reason != "" {
			why += ": " + h.Reinstall.Reason
		}
	}
	wipe := h.WipeData()
	h.Attempt++
	h.LastID++
	a := Attempt{
		ID: h.LastID, Number: h.Attempt, MAC: h.MAC, Hostname: h.Hostname,
		Version: in.version, ImageSHA256: strings.ToLower(in.imageSHA256), ProfileDigest: in.profileDigest,
		ImageRawSize: in.rawSize, Reason: why, Started: in.now,
	}
	if wipe {
		req := *h.Reinstall
		a.WipeData = &req
	}
	cur := a
	h.Current = &cur
	h.State, h.Since, h.UpdatedAt = StateInstalling, in.now, in.now
	h.Reason = fmt.Sprintf("installing %s, attempt %d of %d", in.version.Name, h.Attempt, l.max)
	if h.Token != nil {
		t := *h.Token
		t.Expires = in.now.Add(l.ttl)
		h.Token = &t
	}
	return h, &a, nil
}

// doneIn is the agent's report of success.
type doneIn struct {
	sha256  string
	bytes   int64 // the image's size
	writeMS int64
	// written is what the agent wrote of the image, 0 for all of it;
	// fetched and reused, what it received and what it took from the
	// disk instead.
	written, fetched, reused int64
	peers                    int64 // of fetched, from peers
	now                      time.Time
}

// writing marks the running attempt as seen writing its image, once.
func writing(h HostRecord, now time.Time) HostRecord {
	if h.State != StateInstalling || h.Current == nil || !h.Current.Writing.IsZero() {
		return h
	}
	c := *h.Current
	c.Writing = now
	h.Current = &c
	h.UpdatedAt = now
	return h
}

// done is an agent reporting success. A digest other than the plan's
// fails the attempt instead (ok is false): the record changes either way.
// A report inconsistent with what the agent reported while writing — no
// image progress was ever seen, or a byte count other than the image's —
// is refused (ErrReport) and changes nothing: the machine's own agent does
// not send one, so it is a forgery or a fault, and the attempt goes on
// until its agent reports for real or the machine boots again.
func done(h HostRecord, in doneIn, l limits) (next HostRecord, a *Attempt, ok bool, err error) {
	if h.State != StateInstalling || h.Current == nil {
		return h, nil, false, fmt.Errorf("%w: %s", ErrState, h.State)
	}
	cur := h.Current
	if cur.ImageSHA256 != "" && cur.Writing.IsZero() {
		return h, nil, false, fmt.Errorf("%w: success reported, but the agent never reported writing the image", ErrReport)
	}
	want, got := h.Current.ImageSHA256, strings.ToLower(in.sha256)
	if want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		msg := fmt.Sprintf("the agent reported image sha256 %q, the plan's is %s", got, want)
		t := reportToken(h, doneKey(got), in.now)
		next, a = failCurrent(h, in.now, string(agentapi.PhaseReport), msg, l)
		next.FailedToken = t
		return next, a, false, nil
	}
	if cur.ImageSHA256 != "" {
		switch {
		case cur.ImageRawSize > 0 && in.bytes != cur.ImageRawSize:
			return h, nil, false, fmt.Errorf("%w: success reported with %d bytes written, the image is %d bytes", ErrReport, in.bytes, cur.ImageRawSize)
		case in.bytes <= 0:
			return h, nil, false, fmt.Errorf("%w: success reported with %d bytes written", ErrReport, in.bytes)
		}
	}
	c := *h.Current
	c.Finished, c.Result = in.now, ResultSuccess
	c.BytesWritten, c.WriteMS = in.bytes, in.writeMS
	if in.written > 0 {
		c.BytesWritten = in.written // a chunked image writes what was not in place
	}
	c.BytesFetched, c.BytesReused, c.BytesFetchedPeers = in.fetched, in.reused, in.peers
	c.DurationMS = in.now.Sub(c.Started).Milliseconds()
	if c.ImageSHA256 == "" {
		c.ImageSHA256 = got
	}
	h.State, h.Since, h.UpdatedAt = StateInstalled, in.now, in.now
	h.Version = c.Version
	h.Reason = fmt.Sprintf("installed %s (attempt %d)", c.Version.Name, c.Number)
	h.DoneToken = reportToken(h, doneKey(got), in.now)
	h.Current, h.Token, h.PendingVersion, h.LastError = nil, nil, "", ""
	return h, &c, true, nil
}

// failIn is the agent's report of failure.
type failIn struct {
	phase string
	err   string
	now   time.Time
}

// fail is an agent reporting failure, or the appliance failing an attempt
// for it (a plan that cannot be built). A pending host fails an attempt
// that starts and ends at once, so it counts like any other.
func fail(h HostRecord, in failIn, l limits) (HostRecord, *Attempt, error) {
	switch h.State {
	case StateInstalling:
	case StatePending:
		var err error
		if h, _, err = start(h, startIn{now: in.now}, l); err != nil {
			return h, nil, err
		}
	default:
		return h, nil, fmt.Errorf("%w: %s", ErrState, h.State)
	}
	t := reportToken(h, failedKey(in.phase, in.err), in.now)
	h, a := failCurrent(h, in.now, in.phase, in.err, l)
	h.FailedToken = t
	return h, a, nil
}

// reportToken is what h keeps, as its DoneToken or FailedToken, of the
// running attempt's token once the final report identified by key was
// accepted; nil without a token.
func reportToken(h HostRecord, key string, now time.Time) *Token {
	if h.Token == nil {
		return nil
	}
	return &Token{SHA256: h.Token.SHA256, Attempt: h.Attempt, Expires: now.Add(reportAgainFor), Report: key}
}

// doneKey identifies a success report by its digest: an agent sending its
// report again sends the same one.
func doneKey(sha256 string) string {
	return "done " + strings.ToLower(sha256)
}

// failedKey identifies a failure report by its phase and error.
func failedKey(phase, msg string) string {
	sum := sha256.Sum256([]byte(phase + "\x00" + msg))
	return "failed " + hex.EncodeToString(sum[:])
}

// failCurrent ends the running attempt as failed; the host is pending again
// for the next attempt, or failed after l.max attempts in a row.
func failCurrent(h HostRecord, now time.Time, phase, msg string, l limits) (HostRecord, *Attempt) {
	var a *Attempt
	if h.Current != nil {
		c := *h.Current
		c.Finished, c.Result, c.Phase, c.Error = now, ResultFailed, phase, msg
		c.DurationMS = now.Sub(c.Started).Milliseconds()
		a = &c
	}
	if phase != "" {
		msg = phase + ": " + msg
	}
	h.Current, h.Token, h.LastError = nil, nil, msg
	h.Since, h.UpdatedAt = now, now
	if h.Attempt >= l.max {
		h.State = StateFailed
		h.Reason = fmt.Sprintf("install failed %d times in a row, last: %s", h.Attempt, msg)
	} else {
		h.State = StatePending
		h.Reason = fmt.Sprintf("attempt %d of %d failed, retrying at the next PXE boot: %s", h.Attempt, l.max, msg)
	}
	return h, a
}

// reinstallIn is an admin's request.
type reinstallIn struct {
	reason   string
	version  string // override of the profile's version, or ""
	by       string
	hostname string
	wipeData bool // the next attempt may destroy preserved partitions
	now      time.Time
}

// reinstall makes the host pending again from any state, with a fresh
// count of attempts. A running attempt is superseded.
func reinstall(h HostRecord, exists bool, in reinstallIn) (HostRecord, *Attempt) {
	var a *Attempt
	if h.State == StateInstalling && h.Current != nil {
		c := *h.Current
		c.Finished, c.Result = in.now, ResultSuperseded
		c.DurationMS = in.now.Sub(c.Started).Milliseconds()
		c.Error = "superseded by a reinstall request"
		a = &c
	}
	if !exists {
		h = HostRecord{MAC: h.MAC}
	}
	if in.hostname != "" {
		h.Hostname = in.hostname
	}
	h.State, h.Since, h.UpdatedAt = StatePending, in.now, in.now
	h.Attempt, h.Current, h.Token, h.LastError = 0, nil, nil, ""
	h.PendingVersion = in.version
	h.Reinstall = &Reinstall{At: in.now, By: in.by, Reason: in.reason, Version: in.version, WipeData: in.wipeData}
	h.Reason = "reinstall requested"
	if in.reason != "" {
		h.Reason += ": " + in.reason
	}
	return h, a
}

// reportAgainFor is how long a final report sent again with the token of
// an accepted one gets the same answer instead of a refusal: the agent's
// retries of a report whose answer was lost, at the same appliance or at
// another of its fleet, end within two minutes.
const reportAgainFor = 10 * time.Minute

// doneAgain reports whether token is that of the done the installed host
// accepted last, less than reportAgainFor ago, with no attempt since,
// and, unless key is "", whether the report is the same (doneKey).
func doneAgain(h HostRecord, exists bool, token, key string, now time.Time) bool {
	return h.State == StateInstalled && reportedAgain(h, h.DoneToken, exists, token, key, now)
}

// failedAgain is doneAgain for the failure report (failedKey, or the
// doneKey of a digest other than the plan's) that ended the host's last
// attempt.
func failedAgain(h HostRecord, exists bool, token, key string, now time.Time) bool {
	return (h.State == StatePending || h.State == StateFailed) && reportedAgain(h, h.FailedToken, exists, token, key, now)
}

// reportedAgain is doneAgain and failedAgain on the token t h kept.
func reportedAgain(h HostRecord, t *Token, exists bool, token, key string, now time.Time) bool {
	return exists && t != nil && h.Current == nil && h.Attempt == t.Attempt && now.Before(t.Expires) &&
		(key == "" || key == t.Report) && subtle.ConstantTimeCompare([]byte(tokenDigest(token)), []byte(t.SHA256)) == 1
}

// authorize checks an install token against the record: the digest must
// match, be meant for the pending or running attempt, and not be expired.
// The error, wrapping ErrUnauthorized, says which check failed, for the
// appliance's log; never show it to the client.
func authorize(h HostRecord, exists bool, token string, now time.Time) error {
	if !exists {
		return fmt.Errorf("%w: no record for %s", ErrUnauthorized, h.MAC)
	}
	t := h.Token
	if t == nil {
		return fmt.Errorf("%w: no token outstanding (state %s)", ErrUnauthorized, h.State)
	}
	if subtle.ConstantTimeCompare([]byte(tokenDigest(token)), []byte(t.SHA256)) != 1 {
		return fmt.Errorf("%w: token does not match", ErrUnauthorized)
	}
	want := 0
	switch h.State {
	case StatePending:
		want = h.Attempt + 1
	case StateInstalling:
		want = h.Attempt
	}
	if t.Attempt != want {
		return fmt.Errorf("%w: token of attempt %d, host is %s at attempt %d", ErrUnauthorized, t.Attempt, h.State, h.Attempt)
	}
	if !now.Before(t.Expires) {
		return fmt.Errorf("%w: token expired at %s", ErrUnauthorized, t.Expires.Format(time.RFC3339))
	}
	return nil
}
