package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	t0  = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	now = t0.Add(time.Hour)
	lim = limits{max: 3, ttl: 2 * time.Hour}

	v10 = Version{Name: "demo-1.0", Number: 10}
	v11 = Version{Name: "demo-1.1", Number: 11}
)

const (
	mac = "52:54:00:00:01:01"
	tok = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	sha = "3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e"
)

// Records in each state, as the lifecycle leaves them.
func pending() HostRecord {
	return HostRecord{MAC: mac, Hostname: "r1-n01", State: StatePending, Since: t0, Reason: "in the profiles, first seen at PXE boot", UpdatedAt: t0, LastBoot: t0}
}

// pendingToken is pending with a token minted for attempt 1 at t0.
func pendingToken() HostRecord {
	h := pending()
	h.Token = &Token{SHA256: tokenDigest(tok), Attempt: 1, Expires: t0.Add(lim.ttl)}
	return h
}

// installing is attempt n running since t0.
func installing(n int) HostRecord {
	h := pending()
	h.State, h.Attempt, h.LastID = StateInstalling, n, n+4
	h.Reason = "installing demo-1.1"
	h.Current = &Attempt{ID: n + 4, Number: n, MAC: mac, Hostname: "r1-n01", Version: v11, ImageSHA256: sha, Reason: "first install", Started: t0}
	h.Token = &Token{SHA256: tokenDigest(tok), Attempt: n, Expires: t0.Add(lim.ttl)}
	return h
}

// writingImage is h after its agent reported writing an image of size
// bytes (0: size unknown).
func writingImage(h HostRecord, size int64) HostRecord {
	c := *h.Current
	c.Writing, c.ImageRawSize = t0.Add(time.Minute), size
	h.Current = &c
	return h
}

func installed() HostRecord {
	h := pending()
	h.State, h.Version, h.Attempt, h.LastID, h.Reason = StateInstalled, v10, 1, 1, "installed demo-1.0 (attempt 1)"
	return h
}

func failed() HostRecord {
	h := pending()
	h.State, h.Attempt, h.LastID = StateFailed, 3, 3
	h.Reason = "install failed 3 times in a row, last: write: EIO"
	h.LastError = "write: EIO"
	return h
}

func discovered() HostRecord {
	return HostRecord{MAC: mac, State: StateDiscovered, Since: t0, Reason: "PXE-booted while discovery is on; not in the profiles", UpdatedAt: t0, LastBoot: t0}
}

// with applies changes to a copy of h.
func with(h HostRecord, f func(*HostRecord)) HostRecord {
	f(&h)
	return h
}

func ended(a *Attempt, f func(*Attempt)) *Attempt {
	c := *a
	f(&c)
	return &c
}

// testMint stands for Registry's key-derived token digests: deterministic,
// and different from tokenDigest(tok), the token of "another key".
func testMint(attempt int, expires time.Time) string {
	return fmt.Sprintf("digest/%d/%s", attempt, expires.Format(time.RFC3339Nano))
}

func TestBoot(t *testing.T) {
	booted := func(h HostRecord) HostRecord { h.LastBoot, h.UpdatedAt = now, now; return h }
	minted := func(h HostRecord, attempt int) HostRecord {
		h = booted(h)
		h.Token = &Token{SHA256: testMint(attempt, now.Add(lim.ttl)), Attempt: attempt, Expires: now.Add(lim.ttl)}
		return h
	}
	known := bootIn{known: true, hostname: "r1-n01", now: now, mint: testMint}
	unknown := bootIn{now: now, mint: testMint}
	discovery := bootIn{discovery: true, now: now, mint: testMint}
	held := known
	held.hold = func(v string) string {
		if v == "" {
			v = "profile version"
		}
		return "image missing (" + v + ")"
	}
	// ours is pending with a token this registry minted at issued, booted
	// last at issued.
	ours := func(issued time.Time) HostRecord {
		h := pending()
		h.LastBoot, h.UpdatedAt = issued, issued
		h.Token = &Token{SHA256: testMint(1, issued.Add(lim.ttl)), Attempt: 1, Expires: issued.Add(lim.ttl)}
		return h
	}
	recent := now.Add(-LastBootResolution / 2)
	rebooted := "the machine PXE-booted again before its install finished (rebooted during install)"

	tests := []struct {
		name   string
		h      HostRecord
		exists bool
		in     bootIn
		want   HostRecord
		out    bootOut // changed is set by the loop: want != h
	}{
		{"unknown, discovery off: nothing, no record", HostRecord{MAC: mac}, false, unknown,
			HostRecord{MAC: mac}, bootOut{kind: BootUnknown, message: "not in the profiles"}},
		{"pending, its token fetched again with most of its life left: kept, nothing written", ours(recent), true, known,
			ours(recent), bootOut{kind: BootInstall}},
		{"pending, its token fetched again a while later: kept, the boot recorded", ours(now.Add(-lim.ttl / 4)), true, known,
			with(ours(now.Add(-lim.ttl/4)), func(h *HostRecord) { h.LastBoot, h.UpdatedAt = now, now }), bootOut{kind: BootInstall}},
		{"pending, its token past half its life: a new one", ours(now.Add(-lim.ttl / 2)), true, known,
			minted(pending(), 1), bootOut{kind: BootInstall}},
		{"pending, a token of another key (before a restart): a new one", with(pendingToken(), func(h *HostRecord) { h.LastBoot = recent }), true, known,
			with(minted(pending(), 1), func(h *HostRecord) { h.LastBoot = recent }), bootOut{kind: BootInstall}},
		{"installed, booted again within the resolution: nothing written", with(installed(), func(h *HostRecord) { h.LastBoot = recent }), true, known,
			with(installed(), func(h *HostRecord) { h.LastBoot = recent }), bootOut{kind: BootLocal}},
		{"unknown, discovery on: discovered", HostRecord{MAC: mac}, false, discovery,
			with(discovered(), func(h *HostRecord) { h.Since, h.UpdatedAt, h.LastBoot = now, now, now }), bootOut{kind: BootDiscovery}},
		{"in the profiles, never seen: pending, installer with token for attempt 1", HostRecord{MAC: mac}, false, known,
			minted(with(pending(), func(h *HostRecord) { h.Since = now }), 1), bootOut{kind: BootInstall}},
		{"discovered, now in the profiles: pending, installer", discovered(), true, known,
			minted(with(discovered(), func(h *HostRecord) {
				h.State, h.Since, h.Hostname, h.Reason = StatePending, now, "r1-n01", "added to the profiles after discovery"
			}), 1), bootOut{kind: BootInstall}},
		{"discovered, discovery on", discovered(), true, discovery, booted(discovered()), bootOut{kind: BootDiscovery}},
		{"discovered, discovery now off", discovered(), true, unknown, booted(discovered()), bootOut{kind: BootUnknown}},
		{"pending after a failed attempt: token for the next attempt",
			with(pending(), func(h *HostRecord) { h.Attempt, h.LastID = 1, 1 }), true, known,
			minted(with(pending(), func(h *HostRecord) { h.Attempt, h.LastID = 1, 1 }), 2), bootOut{kind: BootInstall}},
		{"pending with a token of another key outstanding: replaced, same attempt", pendingToken(), true, known,
			minted(pending(), 1), bootOut{kind: BootInstall}},
		{"pending, no longer in the profiles: nothing", pendingToken(), true, unknown,
			booted(pendingToken()), bootOut{kind: BootUnknown, message: "pending, but no longer in the profiles"}},
		{"installing, PXE again: attempt failed, next attempt counted", installing(1), true, known,
			minted(with(installing(1), func(h *HostRecord) {
				h.State, h.Since, h.Current, h.LastError = StatePending, now, nil, rebooted
				h.Reason = "attempt 1 of 3 failed, retrying at the next PXE boot: " + rebooted
			}), 2),
			bootOut{kind: BootInstall, ended: ended(installing(1).Current, func(a *Attempt) {
				a.Finished, a.Result, a.Error, a.DurationMS = now, ResultFailed, rebooted, time.Hour.Milliseconds()
			})}},
		{"installing the last attempt, PXE again: failed, nothing destructive", installing(3), true, known,
			booted(with(installing(3), func(h *HostRecord) {
				h.State, h.Since, h.Current, h.Token, h.LastError = StateFailed, now, nil, nil, rebooted
				h.Reason = "install failed 3 times in a row, last: " + rebooted
			})),
			bootOut{kind: BootFailed, message: "install failed 3 times in a row, last: " + rebooted, ended: ended(installing(3).Current, func(a *Attempt) {
				a.Finished, a.Result, a.Error, a.DurationMS = now, ResultFailed, rebooted, time.Hour.Milliseconds()
			})}},
		{"installed: local disk, whatever the profiles say", installed(), true, known, booted(installed()), bootOut{kind: BootLocal}},
		{"installed, gone from the profiles: still local disk", installed(), true, unknown, booted(installed()), bootOut{kind: BootLocal}},
		{"failed: stays failed, says why", failed(), true, known, booted(failed()), bootOut{kind: BootFailed, message: failed().Reason}},
		{"pending, its version held: no token, no attempt, says why", pending(), true, held,
			booted(pending()), bootOut{kind: BootHeld, message: "image missing (profile version)"}},
		{"in the profiles, never seen, its version held: pending, no token", HostRecord{MAC: mac}, false, held,
			booted(with(pending(), func(h *HostRecord) { h.Since = now })), bootOut{kind: BootHeld, message: "image missing (profile version)"}},
		{"reinstall to a held version: held by that version", with(pending(), func(h *HostRecord) { h.PendingVersion = "demo-1.1" }), true, held,
			booted(with(pending(), func(h *HostRecord) { h.PendingVersion = "demo-1.1" })), bootOut{kind: BootHeld, message: "image missing (demo-1.1)"}},
		{"installing, PXE again while its version is held: attempt failed, held",
			with(installing(1), func(h *HostRecord) { h.Token = nil }), true, held,
			booted(with(installing(1), func(h *HostRecord) {
				h.State, h.Since, h.Current, h.Token, h.LastError = StatePending, now, nil, nil, rebooted
				h.Reason = "attempt 1 of 3 failed, retrying at the next PXE boot: " + rebooted
			})),
			bootOut{kind: BootHeld, message: "image missing (profile version)", ended: ended(installing(1).Current, func(a *Attempt) {
				a.Finished, a.Result, a.Error, a.DurationMS = now, ResultFailed, rebooted, time.Hour.Milliseconds()
			})}},
		{"installed, its version held: local disk", installed(), true, held, booted(installed()), bootOut{kind: BootLocal}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, out := boot(tt.h, tt.exists, tt.in, lim)
			tt.out.changed = !cmp.Equal(tt.want, tt.h)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.out, out, cmp.AllowUnexported(bootOut{})); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStart(t *testing.T) {
	in := startIn{version: v11, imageSHA256: strings.ToUpper(sha), profileDigest: "pd", now: now}
	attempt := func(id, n int, reason string) *Attempt {
		return &Attempt{ID: id, Number: n, MAC: mac, Hostname: "r1-n01", Version: v11, ImageSHA256: sha, ProfileDigest: "pd", Reason: reason, Started: now}
	}
	started := func(h HostRecord, a *Attempt) HostRecord {
		h.State, h.Since, h.UpdatedAt, h.Attempt, h.LastID = StateInstalling, now, now, a.Number, a.ID
		h.Current = a
		h.Reason = "installing demo-1.1, attempt " + string(rune('0'+a.Number)) + " of 3"
		h.Token = &Token{SHA256: h.Token.SHA256, Attempt: h.Token.Attempt, Expires: now.Add(lim.ttl)}
		return h
	}
	reinstalled := with(pendingToken(), func(h *HostRecord) {
		h.LastID = 7
		h.Reinstall = &Reinstall{At: t0, By: "admin", Reason: "CVE-2026-0001"}
	})
	wipeReq := &Reinstall{At: t0, By: "admin", Reason: "CVE-2026-0001", WipeData: true}
	wiping := with(reinstalled, func(h *HostRecord) { h.Reinstall = wipeReq })
	wipingAgain := with(wiping, func(h *HostRecord) {
		h.Attempt, h.LastID = 1, 8
		h.Token = &Token{SHA256: h.Token.SHA256, Attempt: 2, Expires: h.Token.Expires}
	})
	withWipe := func(a *Attempt) *Attempt {
		r := *wipeReq
		a.WipeData = &r
		return a
	}
	tests := []struct {
		name    string
		h       HostRecord
		want    HostRecord
		attempt *Attempt
		err     error
	}{
		{"pending: installing, attempt 1 begins", pendingToken(), started(pendingToken(), attempt(1, 1, "first install")), attempt(1, 1, "first install"), nil},
		{"pending after a reinstall: the attempt says why", reinstalled,
			started(reinstalled, attempt(8, 1, "reinstall: CVE-2026-0001")), attempt(8, 1, "reinstall: CVE-2026-0001"), nil},
		{"pending after a reinstall --wipe-data: the attempt carries the permission", wiping,
			started(wiping, withWipe(attempt(8, 1, "reinstall: CVE-2026-0001"))), withWipe(attempt(8, 1, "reinstall: CVE-2026-0001")), nil},
		{"the second attempt after a reinstall --wipe-data: protected again", wipingAgain,
			started(wipingAgain, attempt(9, 2, "reinstall: CVE-2026-0001")), attempt(9, 2, "reinstall: CVE-2026-0001"), nil},
		{"installing: a second fetch changes nothing", installing(2), installing(2), nil, nil},
		{"installed", installed(), installed(), nil, ErrState},
		{"failed", failed(), failed(), nil, ErrState},
		{"discovered", discovered(), discovered(), nil, ErrState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, a, err := start(tt.h, in, lim)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.attempt, a); diff != "" {
				t.Errorf("attempt (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDone(t *testing.T) {
	mismatch := `report: the agent reported image sha256 "00", the plan's is ` + sha
	tests := []struct {
		name    string
		h       HostRecord
		in      doneIn
		want    HostRecord
		attempt *Attempt
		ok      bool
		err     error
	}{
		{"installing: installed with the attempt's version", with(writingImage(installing(2), 4096), func(h *HostRecord) { h.PendingVersion, h.Version = "demo-1.1", v10 }),
			doneIn{sha256: strings.ToUpper(sha), bytes: 4096, writeMS: 1500, now: now},
			with(installing(2), func(h *HostRecord) {
				h.State, h.Since, h.UpdatedAt, h.Version = StateInstalled, now, now, v11
				h.DoneToken = &Token{SHA256: h.Token.SHA256, Attempt: 2, Expires: now.Add(10 * time.Minute), Report: "done " + sha}
				h.Current, h.Token, h.Reason = nil, nil, "installed demo-1.1 (attempt 2)"
			}),
			ended(writingImage(installing(2), 4096).Current, func(a *Attempt) {
				a.Finished, a.Result, a.BytesWritten, a.WriteMS, a.DurationMS = now, ResultSuccess, 4096, 1500, time.Hour.Milliseconds()
			}), true, nil},
		{"chunked: written, fetched and reused recorded", writingImage(installing(1), 4096), doneIn{sha256: sha, bytes: 4096, written: 1024, fetched: 512, reused: 3072, now: now},
			with(installing(1), func(h *HostRecord) {
				h.State, h.Since, h.UpdatedAt, h.Version = StateInstalled, now, now, v11
				h.DoneToken = &Token{SHA256: h.Token.SHA256, Attempt: 1, Expires: now.Add(10 * time.Minute), Report: "done " + sha}
				h.Current, h.Token, h.Reason = nil, nil, "installed demo-1.1 (attempt 1)"
			}),
			ended(writingImage(installing(1), 4096).Current, func(a *Attempt) {
				a.Finished, a.Result, a.DurationMS = now, ResultSuccess, time.Hour.Milliseconds()
				a.BytesWritten, a.BytesFetched, a.BytesReused = 1024, 512, 3072
			}), true, nil},
		{"digest differs: the attempt fails", writingImage(installing(1), 0), doneIn{sha256: "00", now: now},
			with(installing(1), func(h *HostRecord) {
				h.FailedToken = &Token{SHA256: h.Token.SHA256, Attempt: 1, Expires: now.Add(10 * time.Minute), Report: "done 00"}
				h.State, h.Since, h.UpdatedAt, h.Current, h.Token, h.LastError = StatePending, now, now, nil, nil, mismatch
				h.Reason = "attempt 1 of 3 failed, retrying at the next PXE boot: " + mismatch
			}),
			ended(writingImage(installing(1), 0).Current, func(a *Attempt) {
				a.Finished, a.Result, a.Phase, a.DurationMS = now, ResultFailed, "report", time.Hour.Milliseconds()
				a.Error = strings.TrimPrefix(mismatch, "report: ")
			}), false, nil},
		{"digest differs on the last attempt: failed", writingImage(installing(3), 0), doneIn{sha256: "00", now: now},
			with(installing(3), func(h *HostRecord) {
				h.FailedToken = &Token{SHA256: h.Token.SHA256, Attempt: 3, Expires: now.Add(10 * time.Minute), Report: "done 00"}
				h.State, h.Since, h.UpdatedAt, h.Current, h.Token, h.LastError = StateFailed, now, now, nil, nil, mismatch
				h.Reason = "install failed 3 times in a row, last: " + mismatch
			}),
			ended(writingImage(installing(3), 0).Current, func(a *Attempt) {
				a.Finished, a.Result, a.Phase, a.DurationMS = now, ResultFailed, "report", time.Hour.Milliseconds()
				a.Error = strings.TrimPrefix(mismatch, "report: ")
			}), false, nil},
		// Forged or faulty reports: refused, nothing changes (issue 13).
		{"no image progress seen: refused", installing(1), doneIn{sha256: sha, bytes: 4096, now: now}, installing(1), nil, false, ErrReport},
		{"bytes other than the image's: refused", writingImage(installing(1), 4096), doneIn{sha256: sha, bytes: 1, now: now}, writingImage(installing(1), 4096), nil, false, ErrReport},
		{"no bytes, size unknown: refused", writingImage(installing(1), 0), doneIn{sha256: sha, now: now}, writingImage(installing(1), 0), nil, false, ErrReport},
		{"pending", pendingToken(), doneIn{sha256: sha, now: now}, pendingToken(), nil, false, ErrState},
		{"installed", installed(), doneIn{sha256: sha, now: now}, installed(), nil, false, ErrState},
		{"failed", failed(), doneIn{sha256: sha, now: now}, failed(), nil, false, ErrState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, a, ok, err := done(tt.h, tt.in, lim)
			if !errors.Is(err, tt.err) || ok != tt.ok {
				t.Fatalf("ok, err = %v, %v; want %v, %v", ok, err, tt.ok, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.attempt, a); diff != "" {
				t.Errorf("attempt (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFail(t *testing.T) {
	in := failIn{phase: "write", err: "EIO", now: now}
	failedAttempt := func(a *Attempt) *Attempt {
		return ended(a, func(a *Attempt) {
			a.Finished, a.Result, a.Phase, a.Error, a.DurationMS = now, ResultFailed, "write", "EIO", now.Sub(a.Started).Milliseconds()
		})
	}
	tests := []struct {
		name    string
		h       HostRecord
		want    HostRecord
		attempt *Attempt
		err     error
	}{
		{"installing attempt 1: pending for attempt 2", installing(1),
			with(installing(1), func(h *HostRecord) {
				h.FailedToken = &Token{SHA256: h.Token.SHA256, Attempt: 1, Expires: now.Add(10 * time.Minute), Report: failedKey("write", "EIO")}
				h.State, h.Since, h.UpdatedAt, h.Current, h.Token, h.LastError = StatePending, now, now, nil, nil, "write: EIO"
				h.Reason = "attempt 1 of 3 failed, retrying at the next PXE boot: write: EIO"
			}), failedAttempt(installing(1).Current), nil},
		{"installing attempt 3 of 3: failed", installing(3),
			with(installing(3), func(h *HostRecord) {
				h.FailedToken = &Token{SHA256: h.Token.SHA256, Attempt: 3, Expires: now.Add(10 * time.Minute), Report: failedKey("write", "EIO")}
				h.State, h.Since, h.UpdatedAt, h.Current, h.Token, h.LastError = StateFailed, now, now, nil, nil, "write: EIO"
				h.Reason = "install failed 3 times in a row, last: write: EIO"
			}), failedAttempt(installing(3).Current), nil},
		{"pending (failed before the plan): an attempt starts and fails", pendingToken(),
			with(pendingToken(), func(h *HostRecord) {
				h.FailedToken = &Token{SHA256: h.Token.SHA256, Attempt: 1, Expires: now.Add(10 * time.Minute), Report: failedKey("write", "EIO")}
				h.Attempt, h.LastID, h.Since, h.UpdatedAt, h.Token, h.LastError = 1, 1, now, now, nil, "write: EIO"
				h.Reason = "attempt 1 of 3 failed, retrying at the next PXE boot: write: EIO"
			}),
			&Attempt{ID: 1, Number: 1, MAC: mac, Hostname: "r1-n01", Reason: "first install", Started: now, Finished: now,
				Result: ResultFailed, Phase: "write", Error: "EIO"}, nil},
		{"installed", installed(), installed(), nil, ErrState},
		{"failed", failed(), failed(), nil, ErrState},
		{"discovered", discovered(), discovered(), nil, ErrState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, a, err := fail(tt.h, in, lim)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.attempt, a); diff != "" {
				t.Errorf("attempt (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReinstall(t *testing.T) {
	in := reinstallIn{reason: "CVE-2026-0001", version: "demo-1.1", by: "admin API from 192.0.2.9", hostname: "r1-n01", now: now}
	req := &Reinstall{At: now, By: in.by, Reason: in.reason, Version: "demo-1.1"}
	reset := func(h HostRecord) HostRecord {
		h.State, h.Since, h.UpdatedAt, h.Attempt, h.Current, h.Token, h.LastError = StatePending, now, now, 0, nil, nil, ""
		h.PendingVersion, h.Reinstall, h.Reason = "demo-1.1", req, "reinstall requested: CVE-2026-0001"
		return h
	}
	tests := []struct {
		name    string
		h       HostRecord
		exists  bool
		want    HostRecord
		attempt *Attempt
	}{
		{"installed: pending, version kept until the new one is in", installed(), true, reset(installed()), nil},
		{"failed: pending with a fresh count", failed(), true, reset(failed()), nil},
		{"pending with a token: the token dies", pendingToken(), true, reset(pendingToken()), nil},
		{"installing: the running attempt is superseded", installing(2), true, reset(installing(2)),
			ended(installing(2).Current, func(a *Attempt) {
				a.Finished, a.Result, a.Error, a.DurationMS = now, ResultSuperseded, "superseded by a reinstall request", time.Hour.Milliseconds()
			})},
		{"discovered: pending", discovered(), true, reset(with(discovered(), func(h *HostRecord) { h.Hostname = "r1-n01" })), nil},
		{"no record: created pending", HostRecord{MAC: mac}, false, reset(HostRecord{MAC: mac, Hostname: "r1-n01"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, a := reinstall(tt.h, tt.exists, in)
			if got.WipeData() {
				t.Error("a reinstall without wipe data allows wiping")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.attempt, a); diff != "" {
				t.Errorf("attempt (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAuthorize(t *testing.T) {
	expired := now.Add(lim.ttl + time.Second)
	tests := []struct {
		name   string
		h      HostRecord
		exists bool
		token  string
		at     time.Time
		ok     bool
	}{
		{"pending, its token", pendingToken(), true, tok, now, true},
		{"installing, its token", installing(2), true, tok, now, true},
		{"no record", HostRecord{MAC: mac}, false, tok, now, false},
		{"no token outstanding", pending(), true, tok, now, false},
		{"empty token", pendingToken(), true, "", now, false},
		{"wrong token", pendingToken(), true, strings.Repeat("0", 64), now, false},
		{"token of an older attempt", with(installing(2), func(h *HostRecord) { h.Token.Attempt = 1 }), true, tok, now, false},
		{"token of the attempt a pending host already failed", with(pendingToken(), func(h *HostRecord) { h.Attempt = 1 }), true, tok, now, false},
		{"installed host", with(installed(), func(h *HostRecord) { h.Token = pendingToken().Token }), true, tok, now, false},
		{"expired", pendingToken(), true, tok, expired, false},
		{"at the expiry instant", pendingToken(), true, tok, t0.Add(lim.ttl), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := authorize(tt.h, tt.exists, tt.token, tt.at)
			if tt.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrUnauthorized) {
				t.Errorf("err = %v, want ErrUnauthorized", err)
			}
		})
	}
}

func TestDeriveToken(t *testing.T) {
	key := []byte(strings.Repeat("k", keyBytes))
	a := deriveToken(key, mac, 1, t0)
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" || a != deriveToken(key, mac, 1, t0) {
		t.Fatalf("token %q: want 64 hex digits, the same on every call", a)
	}
	for name, b := range map[string]string{
		"another key":     deriveToken([]byte(strings.Repeat("K", keyBytes)), mac, 1, t0),
		"another MAC":     deriveToken(key, "52:54:00:00:01:02", 1, t0),
		"another attempt": deriveToken(key, mac, 2, t0),
		"another expiry":  deriveToken(key, mac, 1, t0.Add(time.Nanosecond)),
	} {
		if b == a {
			t.Errorf("%s: the same token", name)
		}
	}
	if _, err := newKey(strings.NewReader("short")); err == nil {
		t.Error("newKey with too little randomness succeeded")
	}
}

// TestReinstallWipeData: the request's permission is recorded with it and
// holds for the first attempt only.
func TestReinstallWipeData(t *testing.T) {
	in := reinstallIn{reason: "disk layout redone", by: "alice via admin API from 192.0.2.9", wipeData: true, now: now}
	h, _ := reinstall(installed(), true, in)
	want := &Reinstall{At: now, By: in.by, Reason: in.reason, WipeData: true}
	if diff := cmp.Diff(want, h.Reinstall); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	if !h.WipeData() {
		t.Fatal("pending after reinstall --wipe-data: WipeData() false")
	}
	h.Token = &Token{SHA256: "x", Attempt: 1, Expires: now.Add(time.Hour)}
	h, a, err := start(h, startIn{version: v11, now: now}, lim)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, a.WipeData); diff != "" || !h.WipeData() {
		t.Errorf("attempt 1: WipeData() %v, recorded request (-want +got):\n%s", h.WipeData(), diff)
	}
	h, _ = failCurrent(h, now, "disk", "no disk", lim)
	if h.State != StatePending || h.WipeData() {
		t.Errorf("after attempt 1 failed: %s, WipeData() %v; want pending, false", h.State, h.WipeData())
	}
	h, _ = reinstall(h, true, reinstallIn{reason: "again", now: now})
	if h.WipeData() {
		t.Error("a later reinstall without --wipe-data allows wiping")
	}
}
