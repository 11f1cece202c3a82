package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/registry"
)

// TestReadyz: /readyz answers 503, naming what is missing, until the
// sockets are bound and the first artifact check has finished, then 200;
// rackboot_ready follows.
func TestReadyz(t *testing.T) {
	f := newCheckFixture(t)
	set := f.load(t)
	store, err := registry.OpenBolt(filepath.Join(t.TempDir(), "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := metrics.New(metrics.Options{})
	r := &readiness{store: store, check: newCatalogCheck(f.artifacts, nil), metrics: m}
	srv := httptest.NewServer(r)
	defer srv.Close()

	get := func() (int, readyReport) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep readyReport
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, rep
	}
	gauge := func() float64 {
		t.Helper()
		fams, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "rackboot_ready" {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no rackboot_ready")
		return 0
	}

	code, rep := get()
	if code != http.StatusServiceUnavailable || rep.Ready || rep.Checks["sockets"] == "ok" || rep.Checks["store"] != "ok" {
		t.Errorf("before start: %d %+v, want 503, sockets not bound, store ok", code, rep)
	}
	r.bound.Store(true)
	code, rep = get()
	if code != http.StatusServiceUnavailable || !strings.Contains(rep.Checks["artifacts"], "first check") {
		t.Errorf("bound, artifacts not checked: %d %+v, want 503 naming the artifact check", code, rep)
	}
	if gauge() != 0 {
		t.Errorf("rackboot_ready = %v before ready", gauge())
	}
	// A version failing the check holds its hosts, not the appliance:
	// the fixture's demo-1.1 has a wrong digest.
	if st := r.check.Check(context.Background(), set); st.Failed != 1 {
		t.Fatalf("check: %+v", st)
	}
	code, rep = get()
	if code != http.StatusOK || !rep.Ready {
		t.Errorf("after the check: %d %+v, want 200", code, rep)
	}
	if gauge() != 1 {
		t.Errorf("rackboot_ready = %v when ready", gauge())
	}
	store.Close()
	code, rep = get()
	if code != http.StatusServiceUnavailable || rep.Checks["store"] == "ok" {
		t.Errorf("store closed: %d %+v, want 503 naming the store", code, rep)
	}
}

// TestReloadLog: a load after failed ones logs that the profiles are
// fixed, once; a load after a good one logs nothing.
func TestReloadLog(t *testing.T) {
	var buf bytes.Buffer
	r := &reloadLog{log: slog.New(slog.NewTextHandler(&buf, nil))}
	set := loadExamples(t)
	r.loaded(set)
	r.failed()
	r.failed()
	r.loaded(set)
	r.loaded(set)
	if n := strings.Count(buf.String(), "profiles fixed"); n != 1 {
		t.Errorf("%d 'profiles fixed' lines, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "broken_for=") {
		t.Errorf("the line does not say for how long:\n%s", buf.String())
	}
}

// TestNotifyReady: under systemd ($NOTIFY_SOCKET) the daemon says READY=1
// (Type=notify) and its status.
func TestNotifyReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	log := slog.New(slog.DiscardHandler)
	notifyReady(log)
	notifyStatus(log, catalogStatus{Checked: true, OK: 2, Failed: 1})
	var got []string
	buf := make([]byte, 4096)
	for range 2 {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	if !strings.Contains(got[0], "READY=1") || !strings.Contains(got[1], "STATUS=serving; catalog: 2 versions ok, 1 failed the artifact check") {
		t.Errorf("notifications = %q", got)
	}
}
