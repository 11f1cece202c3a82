// Package registrytest is the conformance suite every registry.Store must
// pass, as slogtest is for slog handlers: the in-memory store, the bbolt
// store and the etcd store (registry/etcdstore) run the same tests (Run).
// A registry.Shared also runs RunShared, on two stores of one backend.
package registrytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/registry"
)

// Run runs the suite. open returns a new, empty store; Run closes it.
func Run(t *testing.T, open func(t *testing.T) registry.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s registry.Store)
	}{
		{"HostNotFound", testHostNotFound},
		{"UpdateCreates", testUpdateCreates},
		{"UpdateError", testUpdateError},
		{"UpdateNoChange", testUpdateNoChange},
		{"UpdateKeepsKey", testUpdateKeepsKey},
		{"HostsOrdered", testHostsOrdered},
		{"Copies", testCopies},
		{"Attempts", testAttempts},
		{"Log", testLog},
		{"LogBound", testLogBound},
		{"LogManySmallThenHuge", testLogManySmallThenHuge},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Delete", testDelete},
		{"Blobs", testBlobs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

var ctx = context.Background()

const macA, macB, macC = "52:54:00:00:01:01", "52:54:00:00:01:02", "52:54:00:00:0a:01"

// t0 is a time that survives encoding exactly: UTC, no monotonic reading.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)

// sample is a record with every field set.
func sample(mac string) registry.HostRecord {
	return registry.HostRecord{
		MAC: mac, Hostname: "r1-n01", State: registry.StateInstalling, Since: t0,
		Version: registry.Version{Name: "demo-1.0", Number: 10}, Attempt: 2, LastID: 5,
		PendingVersion: "demo-1.1", Reason: "installing demo-1.1, attempt 2 of 3", LastError: "write: EIO",
		UpdatedAt: t0, LastBoot: t0,
		Reinstall: &registry.Reinstall{At: t0, By: "admin", Reason: "CVE-2026-0001", Version: "demo-1.1", WipeData: true},
		Current: &registry.Attempt{ID: 5, Number: 2, MAC: mac, Version: registry.Version{Name: "demo-1.1", Number: 11}, Started: t0,
			WipeData: &registry.Reinstall{At: t0, By: "admin", Reason: "CVE-2026-0001", WipeData: true}},
		Token: &registry.Token{SHA256: strings.Repeat("ab", 32), Attempt: 2, Expires: t0.Add(time.Hour)},
	}
}

func put(t *testing.T, s registry.Store, h registry.HostRecord) {
	t.Helper()
	if _, err := s.Update(ctx, h.MAC, func(r *registry.HostRecord, _ bool) (*registry.Attempt, error) {
		*r = h
		return nil, nil
	}); err != nil {
		t.Fatalf("Update(%s): %v", h.MAC, err)
	}
}

func testHostNotFound(t *testing.T, s registry.Store) {
	if _, err := s.Host(ctx, macA); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Host of an unknown MAC: err = %v, want ErrNotFound", err)
	}
	hosts, err := s.Hosts(ctx)
	if err != nil || len(hosts) != 0 {
		t.Errorf("Hosts of an empty store = %v, %v; want none", hosts, err)
	}
	if h, err := s.History(ctx, macA); err != nil || len(h) != 0 {
		t.Errorf("History of an unknown MAC = %v, %v; want none", h, err)
	}
}

func testUpdateCreates(t *testing.T, s registry.Store) {
	want := sample(macA)
	var sawExists []bool
	for range 2 {
		got, err := s.Update(ctx, macA, func(h *registry.HostRecord, exists bool) (*registry.Attempt, error) {
			sawExists = append(sawExists, exists)
			*h = want
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Update returned (-want +got):\n%s", diff)
		}
	}
	if diff := cmp.Diff([]bool{false, true}, sawExists); diff != "" {
		t.Errorf("exists passed to fn (-want +got):\n%s", diff)
	}
	got, err := s.Host(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Host after Update (-want +got):\n%s", diff)
	}
}

func testUpdateError(t *testing.T, s registry.Store) {
	put(t, s, sample(macA))
	boom := errors.New("boom")
	_, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
		h.State = registry.StateFailed
		return &registry.Attempt{ID: 9, Number: 1, Started: t0}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want fn's error", err)
	}
	got, _ := s.Host(ctx, macA)
	if got.State != registry.StateInstalling {
		t.Errorf("state after a failed Update = %s, want the old one", got.State)
	}
	if h, _ := s.History(ctx, macA); len(h) != 0 {
		t.Errorf("a failed Update wrote its attempt: %v", h)
	}
	if _, err := s.Update(ctx, macB, func(*registry.HostRecord, bool) (*registry.Attempt, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want fn's error", err)
	}
	if _, err := s.Host(ctx, macB); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("a failed Update created a record: err = %v", err)
	}
}

func testUpdateNoChange(t *testing.T, s registry.Store) {
	got, err := s.Update(ctx, macA, func(*registry.HostRecord, bool) (*registry.Attempt, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(registry.HostRecord{MAC: macA}, got); diff != "" {
		t.Errorf("Update returned (-want +got):\n%s", diff)
	}
	if _, err := s.Host(ctx, macA); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("an Update that changed nothing created a record: err = %v", err)
	}
}

func testUpdateKeepsKey(t *testing.T, s registry.Store) {
	put(t, s, registry.HostRecord{MAC: macA, State: registry.StatePending})
	_, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
		h.MAC = macB
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Host(ctx, macA); err != nil || got.MAC != macA {
		t.Errorf("Host(%s) = %+v, %v; the key must win over fn's MAC", macA, got, err)
	}
	if _, err := s.Host(ctx, macB); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("changing MAC in fn created %s: err = %v", macB, err)
	}
}

func testHostsOrdered(t *testing.T, s registry.Store) {
	for _, mac := range []string{macC, macA, macB} {
		put(t, s, registry.HostRecord{MAC: mac, State: registry.StatePending})
	}
	hosts, err := s.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hosts {
		got = append(got, h.MAC)
	}
	if diff := cmp.Diff([]string{macA, macB, macC}, got); diff != "" {
		t.Errorf("Hosts order (-want +got):\n%s", diff)
	}
}

func testCopies(t *testing.T, s registry.Store) {
	put(t, s, sample(macA))
	h, err := s.Host(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	h.Current.ID = 99
	h.Token.Attempt = 99
	hosts, _ := s.Hosts(ctx)
	hosts[0].Reinstall.Reason = "changed"
	got, _ := s.Host(ctx, macA)
	if diff := cmp.Diff(sample(macA), got); diff != "" {
		t.Errorf("changing a returned record changed the store (-want +got):\n%s", diff)
	}
	// A record read (and perhaps kept decoded) before a change is not
	// what a read after it returns.
	next := sample(macA)
	next.Token.Attempt, next.Reason = 3, "changed"
	put(t, s, next)
	got, _ = s.Host(ctx, macA)
	if diff := cmp.Diff(next, got); diff != "" {
		t.Errorf("read after a change (-want +got):\n%s", diff)
	}
}

func testAttempts(t *testing.T, s registry.Store) {
	a := func(id int, r registry.Result) *registry.Attempt {
		return &registry.Attempt{ID: id, Number: id, MAC: macA, Version: registry.Version{Name: "demo-1.1", Number: 11},
			ImageSHA256: strings.Repeat("0f", 32), Started: t0, Result: r, Log: []string{"not stored"},
			ImageRawSize: 3 << 30, BytesWritten: 40 << 20, BytesFetched: 12 << 20, BytesReused: 3<<30 - 40<<20}
	}
	for _, at := range []*registry.Attempt{a(2, ""), a(1, registry.ResultFailed), a(2, registry.ResultSuccess), a(10, "")} {
		if _, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
			h.LastID = max(h.LastID, at.ID)
			return at, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.History(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	var want []registry.Attempt
	for _, w := range []*registry.Attempt{a(1, registry.ResultFailed), a(2, registry.ResultSuccess), a(10, "")} {
		w.Log = nil
		want = append(want, *w)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("History: attempts replaced by ID, ordered by ID, without logs (-want +got):\n%s", diff)
	}
	if h, _ := s.History(ctx, macB); len(h) != 0 {
		t.Errorf("attempts leaked to another host: %v", h)
	}
}

func testLog(t *testing.T, s registry.Store) {
	for i, batch := range [][]string{{"one", "two"}, {"three"}, {}, {"four \x1b[31m", "five"}} {
		seq, err := s.AppendLog(ctx, macA, 3, batch)
		if err != nil {
			t.Fatal(err)
		}
		if seq != i+1 {
			t.Errorf("batch %d: seq = %d, want %d", i, seq, i+1)
		}
	}
	if _, err := s.AppendLog(ctx, macA, 4, []string{"other attempt"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendLog(ctx, macB, 3, []string{"other host"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		after int
		want  registry.LogTail
	}{
		{0, registry.LogTail{Lines: []string{"one", "two", "three", "four \x1b[31m", "five"}, Last: 4}},
		{1, registry.LogTail{Lines: []string{"three", "four \x1b[31m", "five"}, Last: 4}},
		{4, registry.LogTail{Lines: []string{}, Last: 4}},
		{7, registry.LogTail{Lines: []string{}, Last: 7}},
	}
	for _, tt := range tests {
		got, err := s.Log(ctx, macA, 3, tt.after)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Log(after %d) (-want +got):\n%s", tt.after, diff)
		}
	}
	got, err := s.Log(ctx, macC, 1, 0)
	if err != nil || len(got.Lines) != 0 || got.Truncated {
		t.Errorf("Log of a host without log = %+v, %v; want empty", got, err)
	}
}

func testLogBound(t *testing.T, s registry.Store) {
	line := strings.Repeat("x", 1000)
	batch := make([]string, 100) // ~100 kB per batch
	total := 0
	for i := range 30 {
		for j := range batch {
			batch[j] = fmt.Sprintf("%04d-%03d %s", i, j, line)
		}
		if _, err := s.AppendLog(ctx, macA, 1, batch); err != nil {
			t.Fatal(err)
		}
		total += len(batch)
	}
	got, err := s.Log(ctx, macA, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, l := range got.Lines {
		size += len(l)
	}
	if !got.Truncated || size > registry.MaxLogBytes || size < registry.MaxLogBytes/2 {
		t.Errorf("3 MB of log kept %d bytes, truncated %v; want at most %d, at least half, truncated", size, got.Truncated, registry.MaxLogBytes)
	}
	if last := got.Lines[len(got.Lines)-1]; !strings.HasPrefix(last, "0029-099 ") {
		t.Errorf("last line kept = %.20q, want the newest line", last)
	}

	// A single batch over the bound keeps its end and says so.
	huge := make([]string, 3000)
	for j := range huge {
		huge[j] = fmt.Sprintf("%04d %s", j, line)
	}
	if _, err := s.AppendLog(ctx, macB, 1, huge); err != nil {
		t.Fatal(err)
	}
	got, err = s.Log(ctx, macB, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.Lines); n < 2 || !strings.Contains(got.Lines[0], "dropped") || !strings.HasPrefix(got.Lines[n-1], "2999 ") {
		t.Errorf("an oversized batch kept %d lines, first %.40q; want a marker line then the newest lines", n, got.Lines[0])
	}
}

// testLogManySmallThenHuge: a batch that needs many small old batches
// dropped to fit is stored, however many they are (a backend whose
// transactions are bounded in operations must drop them in one).
func testLogManySmallThenHuge(t *testing.T, s registry.Store) {
	const small = 300
	for i := range small {
		if _, err := s.AppendLog(ctx, macA, 1, []string{fmt.Sprintf("small %03d", i)}); err != nil {
			t.Fatalf("small batch %d: %v", i, err)
		}
	}
	line := strings.Repeat("y", 1024)
	huge := make([]string, 2000)
	for j := range huge {
		huge[j] = fmt.Sprintf("%04d %s", j, line)
	}
	seq, err := s.AppendLog(ctx, macA, 1, huge)
	if err != nil {
		t.Fatalf("a 2 MB batch after %d small ones: %v", small, err)
	}
	if seq != small+1 {
		t.Errorf("seq of the huge batch = %d, want %d", seq, small+1)
	}
	got, err := s.Log(ctx, macA, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	// What is kept: the newest small batches that still fit (in order,
	// ending with the last), then the huge batch cut to its newest lines
	// after a marker line; more than 128 small batches were dropped.
	var kept []string
	size := 0
	for _, l := range got.Lines {
		size += len(l)
		if strings.HasPrefix(l, "small ") {
			kept = append(kept, l)
		}
	}
	n := len(got.Lines)
	if !got.Truncated || got.Last != small+1 || size > registry.MaxLogBytes || n < len(kept)+2 ||
		!strings.Contains(got.Lines[len(kept)], "dropped") || !strings.HasPrefix(got.Lines[n-1], "1999 ") {
		t.Errorf("Log = %d lines (%d bytes), last %.10q, Last %d, truncated %v; want the newest small "+
			"batches, then a marker and the newest lines of the huge batch, at most %d bytes, Last %d, truncated",
			n, size, got.Lines[n-1], got.Last, got.Truncated, registry.MaxLogBytes, small+1)
	}
	if len(kept) > small-129 {
		t.Errorf("%d small batches kept; the huge batch needs more than 128 dropped", len(kept))
	}
	for i, l := range kept {
		if want := fmt.Sprintf("small %03d", small-len(kept)+i); l != want {
			t.Fatalf("small batches kept: line %d = %q, want %q (the newest, in order)", i, l, want)
		}
	}
	// Appending goes on after the drop.
	if seq, err := s.AppendLog(ctx, macA, 1, []string{"after"}); err != nil || seq != small+2 {
		t.Errorf("AppendLog after the huge batch = %d, %v; want %d", seq, err, small+2)
	}
}

func testConcurrentUpdates(t *testing.T, s registry.Store) {
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
					h.Attempt++
					return nil, nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h, err := s.Host(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	if h.Attempt != workers*each {
		t.Errorf("after %d concurrent increments Attempt = %d: updates are not atomic", workers*each, h.Attempt)
	}
}

func testDelete(t *testing.T, s registry.Store) {
	put(t, s, sample(macA))
	put(t, s, sample(macB))
	if _, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
		return &registry.Attempt{ID: 5, Number: 2, MAC: macA, Started: t0}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendLog(ctx, macA, 5, []string{"line"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Delete(ctx, macC, func(registry.HostRecord) bool { return true }); ok || err != nil {
		t.Errorf("Delete of an absent record = %v, %v; want false, nil", ok, err)
	}
	var saw registry.HostRecord
	if ok, err := s.Delete(ctx, macA, func(h registry.HostRecord) bool { saw = h; return false }); ok || err != nil {
		t.Errorf("Delete refused by fn = %v, %v; want false, nil", ok, err)
	}
	if diff := cmp.Diff(sample(macA), saw); diff != "" {
		t.Errorf("fn was given (-want +got):\n%s", diff)
	}
	if _, err := s.Host(ctx, macA); err != nil {
		t.Fatalf("record gone after a refused Delete: %v", err)
	}
	if ok, err := s.Delete(ctx, macA, func(registry.HostRecord) bool { return true }); !ok || err != nil {
		t.Fatalf("Delete = %v, %v; want true, nil", ok, err)
	}
	if _, err := s.Host(ctx, macA); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Host after Delete: err = %v, want ErrNotFound", err)
	}
	if h, err := s.History(ctx, macA); err != nil || len(h) != 0 {
		t.Errorf("History after Delete = %v, %v; want none", h, err)
	}
	if l, err := s.Log(ctx, macA, 5, 0); err != nil || len(l.Lines) != 0 {
		t.Errorf("Log after Delete = %v, %v; want none", l, err)
	}
	hosts, err := s.Hosts(ctx)
	if err != nil || len(hosts) != 1 || hosts[0].MAC != macB {
		t.Errorf("Hosts after Delete = %v, %v; want only %s", hosts, err, macB)
	}
}

// testBlobs: values by key, listed by prefix, replaced, deleted with nil,
// and handed out as copies.
func testBlobs(t *testing.T, s registry.Store) {
	for k, v := range map[string]string{"rollout/r1": "one", "rollout/r2": "two", "other/x": "x"} {
		if err := s.PutBlob(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutBlob(ctx, "rollout/r1", []byte("uno")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Blobs(ctx, "rollout/")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"rollout/r1": []byte("uno"), "rollout/r2": []byte("two")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Blobs (-want +got):\n%s", diff)
	}
	got["rollout/r2"][0] = 'X'
	if err := s.PutBlob(ctx, "rollout/r1", nil); err != nil {
		t.Fatal(err)
	}
	got, err = s.Blobs(ctx, "rollout/")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]byte{"rollout/r2": []byte("two")}, got); diff != "" {
		t.Errorf("after delete (-want +got):\n%s", diff)
	}
}
