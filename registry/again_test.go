package registry_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/registry"
)

// TestRegistryReportsAgain: an agent sends a report again, with the same
// token, when it got no answer: the appliance that took it may have died
// after committing it, and the agent retries at another appliance of the
// fleet (issue 18). The same report gets the same answer and records
// nothing: no transition, no history entry, no notification. Another
// report with the spent token is refused.
func TestRegistryReportsAgain(t *testing.T) {
	var (
		start = func(r *registry.Registry, tok string) (string, error) {
			a, err := r.Start(ctx, hwA, tok, registry.Install{Version: registry.Version{Name: "demo-1.1", Number: 11}, ImageSHA256: digest})
			return fmt.Sprintf("attempt %d (ID %d)", a.Number, a.ID), err
		}
		done = func(sha string) func(*registry.Registry, string) (string, error) {
			return func(r *registry.Registry, tok string) (string, error) {
				h, err := r.Done(ctx, hwA, tok, registry.Report{SHA256: sha, Bytes: 1 << 20})
				return string(h.State), err
			}
		}
		failed = func(phase, msg string) func(*registry.Registry, string) (string, error) {
			return func(r *registry.Registry, tok string) (string, error) {
				h, err := r.Fail(ctx, hwA, tok, registry.Report{Phase: phase, Error: msg})
				return string(h.State), err
			}
		}
	)
	for _, tt := range []struct {
		name  string
		first func(*registry.Registry, string) (string, error)
		after time.Duration // between the report and its repetition
		again func(*registry.Registry, string) (string, error)
		want  string
		err   error
	}{
		{name: "start again: the running attempt", first: start, again: start, want: "attempt 1 (ID 1)"},
		{name: "done again: installed", first: done(digest), again: done(digest), want: "installed"},
		{name: "done again, upper-case digest: installed", first: done(digest), again: done("3B1C2F0E3B1C2F0E3B1C2F0E3B1C2F0E3B1C2F0E3B1C2F0E3B1C2F0E3B1C2F0E"), want: "installed"},
		{name: "done again with another digest: refused", first: done(digest), again: done("00"), err: registry.ErrUnauthorized},
		{name: "done again after ten minutes: refused", first: done(digest), after: 10 * time.Minute, again: done(digest), err: registry.ErrUnauthorized},
		{name: "done of another digest again: the same failure", first: done("00"), again: done("00"), want: "pending", err: registry.ErrDigest},
		{name: "failed again: pending", first: failed("image", "EIO"), again: failed("image", "EIO"), want: "pending"},
		{name: "failed again with another error: refused", first: failed("image", "EIO"), again: failed("image", "ENOSPC"), err: registry.ErrUnauthorized},
		{name: "failed again after ten minutes: refused", first: failed("image", "EIO"), after: 10 * time.Minute, again: failed("image", "EIO"), err: registry.ErrUnauthorized},
		{name: "done with the token of a failure: refused", first: failed("image", "EIO"), again: done(digest), err: registry.ErrUnauthorized},
		{name: "failed with the token of a done: refused", first: done(digest), again: failed("image", "EIO"), err: registry.ErrUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, clock, events := newRegistry(t)
			d, err := r.Boot(ctx, hwA, "r1-n01", true, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := start(r, d.Token); err != nil {
				t.Fatal(err)
			}
			if err := r.Writing(ctx, hwA, d.Token); err != nil {
				t.Fatal(err)
			}
			*clock = clock.Add(time.Minute)
			first, ferr := tt.first(r, d.Token)
			if ferr != nil && !errors.Is(ferr, registry.ErrDigest) {
				t.Fatal(ferr)
			}
			before := snapshot(t, r)
			nEvents := len(*events)
			*clock = clock.Add(tt.after)

			got, err := tt.again(r, d.Token)
			if !errors.Is(err, tt.err) {
				t.Fatalf("again: err = %v, want %v", err, tt.err)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("again: %q, want %q (first: %q)", got, tt.want, first)
			}
			if diff := cmp.Diff(before, snapshot(t, r)); diff != "" {
				t.Errorf("the report sent again changed the registry (-before +after):\n%s", diff)
			}
			if extra := (*events)[nEvents:]; len(extra) > 0 {
				t.Errorf("the report sent again notified %v", extra)
			}
		})
	}
}

// recorded is what the registry holds of hwA: its record and history.
type recorded struct {
	Host    registry.HostRecord
	History []registry.Attempt
}

func snapshot(t *testing.T, r *registry.Registry) recorded {
	t.Helper()
	h, err := r.Store.Host(ctx, hwA.String())
	if err != nil {
		t.Fatal(err)
	}
	hist, err := r.Store.History(ctx, hwA.String())
	if err != nil {
		t.Fatal(err)
	}
	return recorded{h, hist}
}

// TestRegistryLogAgain: a log batch sent again (its first sending got no
// answer) is stored unless the attempt's log already ends with it; a
// batch not marked as sent again is always stored.
func TestRegistryLogAgain(t *testing.T) {
	for _, tt := range []struct {
		name    string
		lines   []string
		again   bool
		wantSeq int
		want    []string
	}{
		{"the last batch again: not stored", []string{"b", "c"}, true, 0, []string{"a", "b", "c"}},
		{"its last line again: not stored", []string{"c"}, true, 0, []string{"a", "b", "c"}},
		{"never stored: stored", []string{"d"}, true, 3, []string{"a", "b", "c", "d"}},
		{"an earlier batch again: stored", []string{"a"}, true, 3, []string{"a", "b", "c", "a"}},
		{"not marked: stored", []string{"b", "c"}, false, 3, []string{"a", "b", "c", "b", "c"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _, _ := newRegistry(t)
			d, err := r.Boot(ctx, hwA, "r1-n01", true, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range [][]string{{"a"}, {"b", "c"}} {
				if _, _, err := r.AppendLog(ctx, hwA, d.Token, b, false); err != nil {
					t.Fatal(err)
				}
			}
			id, seq, err := r.AppendLog(ctx, hwA, d.Token, tt.lines, tt.again)
			if err != nil || id != 1 || seq != tt.wantSeq {
				t.Fatalf("AppendLog = %d, %d, %v; want attempt 1, batch %d", id, seq, err, tt.wantSeq)
			}
			log, err := r.Store.Log(ctx, hwA.String(), 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, log.Lines); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
		})
	}
}
