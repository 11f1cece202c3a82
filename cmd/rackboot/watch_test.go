package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/registry"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// sse writes one event as the daemon does.
func sse(t *testing.T, typ string, data any) string {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("event: %s\ndata: %s\n\n", typ, b)
}

func progress(mac, host string, phase agentapi.Phase, done, total int64, rate float64, d time.Duration) api.ProgressEvent {
	p := api.ProgressEvent{MAC: mac, Hostname: host, Attempt: 1, At: at(d).Format(time.RFC3339Nano),
		Progress: agentapi.Progress{Phase: phase, Done: done, Total: total, Rate: rate}}
	if total > done && rate > 0 {
		p.ETASeconds = float64(total-done) / rate
	}
	return p
}

// fakeDaemon serves a scripted event stream and the installing hosts: the
// first list, then the second.
type fakeDaemon struct {
	installing [2][]api.HostView
	stream     string
	snapshots  atomic.Int32
}

func (f *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+testAdminToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/api/hosts":
		if r.URL.Query().Get("state") != "installing" {
			http.Error(w, "unexpected query", http.StatusBadRequest)
			return
		}
		n := f.snapshots.Add(1)
		json.NewEncoder(w).Encode(f.installing[min(n, 2)-1])
	case "/api/events":
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, f.stream)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	default:
		http.NotFound(w, r)
	}
}

// TestWatchPlain: on a non-terminal, a line per change and at most one
// progress line per machine per interval, unless the phase changes.
func TestWatchPlain(t *testing.T) {
	const gib = 1 << 30
	r2 := registry.HostRecord{MAC: macR2, Hostname: "r2-n01", State: registry.StateInstalling, Attempt: 3, Since: at(-time.Minute),
		Current: &registry.Attempt{ID: 3, Number: 3, Version: registry.Version{Name: "demo-1.1", Number: 11}}}
	p := progress(macR2, "r2-n01", "image", gib, 2*gib, 50<<20, 0)
	f := &fakeDaemon{}

	n01 := registry.HostRecord{MAC: macN01, Hostname: "r1-n01", State: registry.StatePending, UpdatedAt: at(time.Second),
		Reinstall: &registry.Reinstall{By: "alice via admin API from 127.0.0.1", Reason: "CVE-2026-12345"}}
	booted := n01
	booted.UpdatedAt = at(5 * time.Second)
	started := n01
	started.State, started.Attempt, started.UpdatedAt = registry.StateInstalling, 1, at(20*time.Second)
	v10 := registry.Version{Name: "demo-1.0", Number: 10}
	installed := n01
	installed.State, installed.Attempt, installed.Version, installed.UpdatedAt = registry.StateInstalled, 1, v10, at(4*time.Minute+25*time.Second)
	again := installed
	again.UpdatedAt = at(5 * time.Minute)
	f.installing = [2][]api.HostView{
		{{HostRecord: r2, InProfiles: true, Progress: &p}},
		{{HostRecord: started, InProfiles: true}, {HostRecord: r2, InProfiles: true, Progress: &p}},
	}
	failed := r2
	failed.State, failed.Current, failed.UpdatedAt = registry.StateFailed, nil, at(5*time.Minute+time.Second)

	f.stream = ": rackboot events\n\n" +
		sse(t, "state", api.StateEvent{Event: "reinstall", Host: n01}) +
		sse(t, "state", api.StateEvent{Event: "boot", Host: booted}) +
		": ping\n\n" +
		sse(t, "state", api.StateEvent{Event: "start", Host: started, Attempt: &registry.Attempt{Number: 1, Version: v10}}) +
		sse(t, "progress", progress(macN01, "r1-n01", "partition", 0, 0, 0, 21*time.Second)) +
		sse(t, "progress", progress(macN01, "r1-n01", "image", gib/4, 5*gib/2, 100<<20, 22*time.Second)) +
		sse(t, "progress", progress(macN01, "r1-n01", "image", gib/2, 5*gib/2, 100<<20, 23*time.Second)) + // within the interval: not shown
		"event: dropped\ndata: {\"count\": 3}\n\n" + // the view reads the hosts again
		strings.ReplaceAll(sse(t, "progress", progress(macN01, "r1-n01", "image", 7*gib/4, 5*gib/2, 100<<20, 28*time.Second)), "\n", "\r\n") +
		sse(t, "progress", progress(macR2, "r2-n01", "report", 2*gib, 2*gib, 0, 29*time.Second)) +
		sse(t, "state", api.StateEvent{Event: "done", Host: installed, Attempt: &registry.Attempt{Number: 1, Version: v10, Result: registry.ResultSuccess, DurationMS: 245000, BytesWritten: 5 * gib / 2}}) +
		sse(t, "state", api.StateEvent{Event: "boot", Host: again}) +
		sse(t, "state", api.StateEvent{Event: "failed", Host: failed, Attempt: &registry.Attempt{Number: 3, Result: registry.ResultFailed, Phase: "report", Error: "sha256 mismatch"}})
	ts := httptest.NewTLSServer(f)
	defer ts.Close()

	c, stdout, stderr := testCLI(map[string]string{"RACKBOOT_SERVER": ts.URL, "RACKBOOT_TOKEN": testAdminToken})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// An attempt failed while watching: status 1.
	if code := c.watch(ctx, []string{"--until-idle"}); code != 1 {
		t.Errorf("exit %d, want 1: %s", code, stderr)
	}
	golden(t, "watch-plain", stdout.String())
	if n := f.snapshots.Load(); n != 2 {
		t.Errorf("read the installing hosts %d times, want 2 (start, dropped)", n)
	}
	if stderr.String() != "" {
		t.Errorf("stderr: %s", stderr)
	}
}

// TestWatchLive: against the daemon's API, watch shows an install already
// running, one that starts, their progress and ends, then exits when the
// fleet is idle.
func TestWatchLive(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet() // r1-s01 is installing
	c, stdout, stderr := e.cli()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- c.watch(ctx, []string{"--until-idle"}) }()
	// The hosts are read after the stream opened: from here on no event
	// is lost.
	waitFor(t, stdout, "r1-s01 (52:54:00:77:00:04) installing demo-1.0 (10), attempt 1\n")

	const n03 = "52:54:00:77:00:03"
	e.boot(n03)
	e.start(n03, "demo-1.1")
	e.agent("/api/agent/progress", macS01, `{"phase": "image", "done": 0, "total": 2147483648, "rate": 0}`)
	e.clock.Add(time.Second)
	e.agent("/api/agent/progress", macS01, `{"phase": "image", "done": 1073741824, "total": 2147483648, "rate": 104857600}`)
	e.clock.Add(10 * time.Second)
	e.agent("/api/agent/progress", macS01, `{"phase": "image", "done": 2147483648, "total": 2147483648, "rate": 104857600}`)
	e.done(macS01, time.Minute, 2<<30)
	waitFor(t, stdout, "r1-s01 (52:54:00:77:00:04) installed")
	e.done(n03, time.Minute, 3<<30)

	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr)
		}
	case <-ctx.Done():
		t.Fatalf("watch --until-idle did not end:\n%s", stdout)
	}
	golden(t, "watch-live", stdout.String())
}

// TestWatchTimeout: --until-idle with --timeout names the machines still
// installing and exits 1.
func TestWatchTimeout(t *testing.T) {
	e := newAdminEnv(t)
	e.fleet()
	c, _, stderr := e.cli()
	if code := runCmd(c, (*cli).watch, "--until-idle", "--timeout", "200ms"); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if diff := cmp.Diff("rackboot watch: timed out after 200ms; still installing: r1-s01\n", stderr.String()); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

// TestWatchUnauthorized: a refused stream fails at once, not in a
// reconnect loop.
func TestWatchUnauthorized(t *testing.T) {
	e := newAdminEnv(t)
	c, _, stderr := testCLI(map[string]string{"RACKBOOT_SERVER": e.url, "RACKBOOT_TOKEN": "nope"})
	if code := runCmd(c, (*cli).watch, "--timeout", "5s"); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if want := "rackboot watch: 401: wrong or missing admin token — read from $RACKBOOT_TOKEN\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

// TestWatchTerminal: on a terminal the busy machines are bars redrawn in
// place, and lines that stay scroll above them.
func TestWatchTerminal(t *testing.T) {
	var out syncBuffer
	now := at(time.Minute)
	v := &watchView{out: &out, loc: time.UTC, interval: 5 * time.Second, now: func() time.Time { return now },
		tty: true, width: 100, height: 24}
	started := registry.HostRecord{MAC: macN01, Hostname: "r1-n01", State: registry.StateInstalling, Attempt: 1, UpdatedAt: at(0)}
	v.onState(api.StateEvent{Event: "start", Host: started, Attempt: &registry.Attempt{Number: 1, Version: registry.Version{Name: "demo-1.0", Number: 10}}})
	v.onProgress(progress(macN01, "r1-n01", "image", 3<<29, 2<<30, 80<<20, 10*time.Second))
	v.onProgress(progress(macS01, "", "image", 300<<20, 0, 20<<20, 10*time.Second))
	v.redraw()
	v.redraw() // nothing changed, under a second: nothing drawn
	now = now.Add(45 * time.Second)
	v.onProgress(progress(macS01, "", "image", 900<<20, 0, 20<<20, 55*time.Second))
	v.redraw() // r1-n01 is silent for 45 s: its bar says so
	done := started
	done.State, done.Version, done.UpdatedAt = registry.StateInstalled, registry.Version{Name: "demo-1.0", Number: 10}, at(2*time.Minute)
	v.onState(api.StateEvent{Event: "done", Host: done, Attempt: &registry.Attempt{DurationMS: 120000, BytesWritten: 2 << 30}})
	v.finish()
	readable := strings.NewReplacer("\x1b[", "ESC[").Replace(out.String())
	golden(t, "watch-tty", readable)
}

func TestBarLine(t *testing.T) {
	now := at(time.Minute)
	p := progress(macN01, "r1-n01", "image", 1<<30, 4<<30, 100<<20, 0)
	tests := []struct {
		name  string
		m     watched
		width int
		want  string
	}{
		{"bar", watched{mac: macN01, hostname: "r1-n01", progress: &p, received: now}, 100,
			"r1-n01  image      [" + strings.Repeat("█", 8) + strings.Repeat("░", 33-8) + "]   25%  1.00 GiB/4.00 GiB  100 MiB/s  ETA 31s"},
		{"narrow: no bar", watched{mac: macN01, hostname: "r1-n01", progress: &p, received: now}, 70,
			"r1-n01  image       25%  1.00 GiB/4.00 GiB  100 MiB/s  ETA 31s"},
		{"loading", watched{mac: macN01, attempt: 2}, 100, macN01 + "  loading its installer, attempt 2"},
		{"installing, no report", watched{mac: macN01, hostname: "r1-n01", installing: true, attempt: 1, version: registry.Version{Name: "demo-1.0", Number: 10}}, 100,
			"r1-n01  installing demo-1.0 (10), attempt 1: waiting for its first report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := barLine(&tt.m, len(tt.m.name()), tt.width, now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if n := utf8.RuneCountInString(got); n >= tt.width {
				t.Errorf("%d columns: the line would wrap on a %d-column terminal", n, tt.width)
			}
		})
	}
	if got := fitWidth("abcdef", 4); got != "abc" {
		t.Errorf("fitWidth = %q", got)
	}
}

// TestWatchReconnect: a stream the daemon closes (a restart) is opened
// again, and the hosts are read again.
func TestWatchReconnect(t *testing.T) {
	started := registry.HostRecord{MAC: macN01, Hostname: "r1-n01", State: registry.StateInstalling, Attempt: 1, UpdatedAt: at(0)}
	done := started
	done.State, done.UpdatedAt = registry.StateInstalled, at(time.Minute)
	streams := []string{
		sse(t, "state", api.StateEvent{Event: "start", Host: started}),
		sse(t, "state", api.StateEvent{Event: "done", Host: done}),
	}
	var conns, snapshots atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/hosts":
			if snapshots.Add(1) == 1 {
				io.WriteString(w, "[]")
				return
			}
			json.NewEncoder(w).Encode([]api.HostView{{HostRecord: started}})
		case "/api/events":
			n := conns.Add(1)
			io.WriteString(w, streams[min(n, 2)-1])
			if n > 1 {
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}
			// The first stream ends here, as at a daemon's restart.
		}
	}))
	defer ts.Close()
	c, stdout, stderr := testCLI(map[string]string{"RACKBOOT_SERVER": ts.URL, "RACKBOOT_TOKEN": testAdminToken})
	if code := runCmd(c, (*cli).watch, "--until-idle", "--timeout", "10s"); code != 0 {
		t.Errorf("exit %d: %s", code, stderr)
	}
	want := "10:00:00 r1-n01 (52:54:00:77:00:01) installing -, attempt 1\n" +
		"09:59:00 rackboot watch: lost the event stream (the daemon closed the stream); reconnecting in 1s\n" +
		"10:01:00 r1-n01 (52:54:00:77:00:01) installed -\n"
	if diff := cmp.Diff(want, stdout.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if conns.Load() != 2 || snapshots.Load() != 2 {
		t.Errorf("%d streams, %d host reads; want 2 and 2", conns.Load(), snapshots.Load())
	}
}

// TestWatchChunked: a chunked install's progress and end say how much was
// fetched (how much of it from peers) and how much of the image the disk
// already had.
func TestWatchChunked(t *testing.T) {
	var out syncBuffer
	now := at(time.Minute)
	v := &watchView{out: &out, loc: time.UTC, interval: 5 * time.Second, now: func() time.Time { return now }}
	p := progress(macN01, "r1-n01", "image", 1<<30, 2<<30, 200<<20, 10*time.Second)
	p.Fetched, p.Reused, p.FetchedPeers = 12<<20, 1<<30-16<<20, 9<<20
	v.onProgress(p)
	done := registry.HostRecord{MAC: macN01, Hostname: "r1-n01", State: registry.StateInstalled, Attempt: 1,
		Version: registry.Version{Name: "base-4", Number: 4}, UpdatedAt: at(2 * time.Minute)}
	v.onState(api.StateEvent{Event: "done", Host: done, Attempt: &registry.Attempt{DurationMS: 60000, ImageRawSize: 2 << 30,
		BytesWritten: 40 << 20, BytesFetched: 38 << 20, BytesReused: 2<<30 - 40<<20, BytesFetchedPeers: 30 << 20}})
	want := "10:00:10 r1-n01 (52:54:00:77:00:01) image 50% 1.00 GiB of 2.00 GiB, 200 MiB/s, fetched 12.0 MiB (9.00 MiB from peers) of 2.00 GiB, 49 % reused, ETA 5s\n" +
		"10:02:00 r1-n01 (52:54:00:77:00:01) installed base-4 (4) in 1m00s, 40.0 MiB written, fetched 38.0 MiB (30.0 MiB from peers) of 2.00 GiB, 98 % reused\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	m := &watched{mac: macN01, hostname: "r1-n01", progress: &p, received: now}
	if got, want := barLine(m, 6, 180, now), "]   50%  1.00 GiB/2.00 GiB  200 MiB/s  fetched 12.0 MiB (9.00 MiB from peers) of 2.00 GiB, 49 % reused  ETA 5s"; !strings.HasSuffix(got, want) {
		t.Errorf("bar line %q, want it to end with %q", got, want)
	}
}
