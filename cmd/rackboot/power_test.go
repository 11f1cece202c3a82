package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/power/powertest"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// powerEnv is the daemon's routes over loopback with a fleet whose BMCs
// are doubles: three machines behind one Redfish BMC (rack a), one behind
// go-ipmi's reference BMC, and broken ones (a wrong password, a closed
// port, a BMC that never answers, a missing credential file).
type powerEnv struct {
	url     string
	log     *syncBuffer
	redfish *powertest.RedfishBMC
	ipmi    *powertest.IPMIBMC
	machine map[string]*powertest.FakeMachine
	reg     *registry.Registry
	dir     string // profiles
}

const testBMCPassword = "s3cret-BMC-pw"

func newPowerEnv(t *testing.T) *powerEnv {
	t.Helper()
	e := &powerEnv{log: &syncBuffer{}, machine: map[string]*powertest.FakeMachine{}}
	systems := map[string]powertest.Machine{}
	for _, id := range []string{"m1", "m2", "m3"} {
		e.machine[id] = powertest.NewFakeMachine(false)
		systems[id] = e.machine[id]
	}
	e.redfish = &powertest.RedfishBMC{User: "admin", Password: testBMCPassword, Systems: systems}
	rf := httptest.NewServer(e.redfish)
	t.Cleanup(rf.Close)
	e.machine["i1"] = powertest.NewFakeMachine(true)
	e.ipmi = &powertest.IPMIBMC{Name: "i1", User: "admin", Password: testBMCPassword, Machine: e.machine["i1"]}
	ipmiAddr := powertest.ServeIPMI(t, e.ipmi)

	creds := t.TempDir()
	for name, pw := range map[string]string{"rack-a": testBMCPassword + "\n", "wrong": "not-the-password"} {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.dir = t.TempDir()
	yaml := "versions:\n  - {name: v2, number: 2, installer: {kernel: vmlinuz}, image: {url: v2.img.zst, sha256: '" + strings.Repeat("ab", 32) + "'}}\n" +
		"groups:\n  - name: rack-a\n    match: {labels: {rack: a}}\n    bmc: {protocol: redfish, username: admin, credential: rack-a}\nhosts:\n" +
		"  - {mac: 52:54:00:0b:00:01, hostname: r1, labels: {rack: a}, bmc: {address: '" + rf.URL + "', system: m1}}\n" +
		"  - {mac: 52:54:00:0b:00:02, hostname: r2, labels: {rack: a}, bmc: {address: '" + rf.URL + "', system: m2}}\n" +
		"  - {mac: 52:54:00:0b:00:03, hostname: r3, labels: {rack: a}, bmc: {address: '" + rf.URL + "', system: m3}}\n" +
		"  - {mac: 52:54:00:0b:00:04, hostname: i1, bmc: {protocol: ipmi, address: '" + ipmiAddr + "', username: admin, credential: rack-a}}\n" +
		"  - {mac: 52:54:00:0b:00:05, hostname: badpw, bmc: {protocol: redfish, address: '" + rf.URL + "', username: admin, credential: wrong, system: m1}}\n" +
		"  - {mac: 52:54:00:0b:00:06, hostname: closed, bmc: {protocol: redfish, address: 'http://" + powertest.ClosedTCP(t) + "', username: admin, credential: rack-a}}\n" +
		"  - {mac: 52:54:00:0b:00:07, hostname: hang, bmc: {protocol: redfish, address: 'http://" + powertest.HangTCP(t) + "', username: admin, credential: rack-a}}\n" +
		"  - {mac: 52:54:00:0b:00:08, hostname: nocred, bmc: {protocol: ipmi, address: '" + ipmiAddr + "', username: admin, credential: missing}}\n" +
		"  - {mac: 52:54:00:0b:00:09, hostname: nobmc}\n"
	if err := os.WriteFile(filepath.Join(e.dir, "fleet.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	fl := fleet{&profiles.Watcher{Dir: e.dir}}
	if err := fl.Reload(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metrics.New(metrics.Options{})
	e.reg = &registry.Registry{Store: registry.NewMemory(), Log: log}
	cfg := defaultServeConfig()
	cfg.Advertise, cfg.Artifacts, cfg.BMCCredentials = "127.0.0.1", t.TempDir(), creds
	cfg.PowerTimeout, cfg.PowerStagger = 3*time.Second, 0
	rt := httpRoutes(cfg, t.TempDir(), fl, e.reg, &api.Events{}, testAdminToken, profiles.Planner{}, []byte("CA"), trustLoopback(), m, &readiness{}, nil, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.rollouts.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	plain := httptest.NewServer(rt.plain)
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(rt.secure)
	t.Cleanup(secure.Close)
	e.url = secure.URL
	e.log.Write([]byte(metricsText(t, plain.URL)))
	return e
}

func (e *powerEnv) cli() (*cli, *syncBuffer, *syncBuffer) {
	return testCLI(map[string]string{"RACKBOOT_SERVER": e.url, "RACKBOOT_TOKEN": testAdminToken})
}

func metricsText(t *testing.T, url string) string {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestPowerThroughBMCs: the daemon's power route over real clients
// (gofish, go-ipmi) and BMC doubles: results per machine, each failure
// with its own kind, none holding up the others, actions in the hosts'
// history, and the password nowhere an admin or a log reader sees.
func TestPowerThroughBMCs(t *testing.T) {
	e := newPowerEnv(t)

	c, stdout, stderr := e.cli()
	if code := c.power(context.Background(), []string{"status", "r1", "i1"}); code != 0 {
		t.Fatalf("power status: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"r1", "off", "i1", "on"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, stdout)
		}
	}

	c, stdout, stderr = e.cli()
	start := time.Now()
	code := c.power(context.Background(), []string{"on", "--netboot", "--json", "r1", "i1", "badpw", "closed", "hang", "nocred", "nobmc"})
	took := time.Since(start)
	if code != 1 {
		t.Errorf("power on with broken BMCs: exit %d, want 1\n%s", code, stderr)
	}
	var resp api.PowerResponse
	if err := json.Unmarshal([]byte(stdout.String()), &resp); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	want := map[string]string{"r1": "", "i1": "", "badpw": "auth", "closed": "unreachable", "hang": "timeout", "nocred": "config", "nobmc": "config"}
	for _, r := range resp.Results {
		k, ok := want[r.Hostname]
		if !ok {
			t.Errorf("unexpected result %+v", r)
			continue
		}
		delete(want, r.Hostname)
		if r.Kind != k || r.OK != (k == "") {
			t.Errorf("%s: ok %v kind %q (%s), want kind %q", r.Hostname, r.OK, r.Kind, r.Error, k)
		}
		if r.OK && r.State != "on" {
			t.Errorf("%s: state %s after on", r.Hostname, r.State)
		}
	}
	if len(want) > 0 {
		t.Errorf("no result for %v", want)
	}
	// The hanging BMC costs one power timeout (3 s, retries within it),
	// not one per machine.
	if took > 6*time.Second {
		t.Errorf("power on took %s: a broken BMC held up the others", took)
	}
	if calls := e.machine["m1"].Calls(); len(calls) != 1 || calls[0].Op != "on" || !calls[0].NetBoot {
		t.Errorf("m1 saw %+v, want one power on with the network boot", calls)
	}
	if f := e.ipmi.BootFlags(); f == nil || f.Persist {
		t.Errorf("IPMI boot flags %+v, want a one-time boot", f)
	}

	// A selection, staggered: starts at least the stagger apart.
	c, stdout, stderr = e.cli()
	if code := c.power(context.Background(), []string{"cycle", "--selector", "rack=a", "--yes", "--stagger", "300ms"}); code != 0 {
		t.Fatalf("power cycle --selector: exit %d\n%s%s", code, stdout, stderr)
	}
	var times []time.Time
	for _, id := range []string{"m1", "m2", "m3"} {
		calls := e.machine[id].Calls()
		times = append(times, calls[len(calls)-1].Time)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 250*time.Millisecond {
			t.Errorf("machines %d and %d cycled %s apart, stagger 300ms", i, i+1, gap)
		}
	}

	// History: who, what, the result; a status read is not an action.
	c, stdout, _ = e.cli()
	if code := c.history(context.Background(), []string{"r1"}); code != 0 {
		t.Fatalf("history: exit %d", code)
	}
	hist := stdout.String()
	for _, want := range []string{"power actions through the BMC (redfish http://127.0.0.1:", "on + netboot once", "cycle", "alice via admin API from 127.0.0.1"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %q:\n%s", want, hist)
		}
	}
	h, err := e.reg.Store.Host(context.Background(), "52:54:00:0b:00:05")
	if err != nil || len(h.Power) != 1 || h.Power[0].Result != registry.PowerFailed || h.Power[0].Kind != "auth" {
		t.Errorf("badpw's record: %+v %v", h.Power, err)
	}

	// The password appears nowhere: logs, the API, history, render.
	var seen bytes.Buffer
	seen.WriteString(e.log.String())
	seen.WriteString(hist)
	seen.WriteString(stdout.String())
	for _, path := range []string{"/api/hosts", "/api/hosts/52:54:00:0b:00:05", "/api/hosts/52:54:00:0b:00:01/history"} {
		c, _, _ := e.cli()
		cl, err := c.client(&clientFlags{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := cl.raw(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		seen.Write(b)
	}
	var rout, rerr bytes.Buffer
	if code := runRender(context.Background(), []string{"--profiles", e.dir, "--mac", "52:54:00:0b:00:01"}, &rout, &rerr); code != 0 {
		t.Fatalf("render: exit %d: %s", code, rerr.String())
	}
	if !strings.Contains(rout.String(), "rack-a (a file of the credentials directory)") {
		t.Errorf("render does not show the credential's name:\n%s", rout.String())
	}
	seen.Write(rout.Bytes())
	if strings.Contains(seen.String(), testBMCPassword) || strings.Contains(seen.String(), "not-the-password") {
		t.Errorf("a BMC password is in the logs, the API or render output")
	}
}

// TestPowerCycleReinstall: reinstall --power-cycle marks the machines and
// cycles them with a one-time network boot; with a host that has no BMC
// it marks nothing.
func TestPowerCycleReinstall(t *testing.T) {
	e := newPowerEnv(t)
	c, stdout, stderr := e.cli()
	if code := c.reinstall(context.Background(), []string{"--power-cycle", "--no-wait", "r1", "nobmc"}); code != 1 {
		t.Errorf("reinstall --power-cycle with a host without a BMC: exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "no bmc in the profile of nobmc (52:54:00:0b:00:09); nothing was marked") {
		t.Errorf("stderr: %s", stderr)
	}
	if _, err := e.reg.Store.Host(context.Background(), "52:54:00:0b:00:01"); err == nil {
		t.Errorf("r1 was marked although the request was refused")
	}
	c, stdout, stderr = e.cli()
	if code := c.reinstall(context.Background(), []string{"--power-cycle", "--no-wait", "--selector", "rack=a", "--yes", "--reason", "CVE-1"}); code != 0 {
		t.Fatalf("reinstall --power-cycle: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout.String(), "marked 3 machines pending: each installs again now") {
		t.Errorf("stdout:\n%s", stdout)
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		calls := e.machine[id].Calls()
		if len(calls) != 1 || calls[0].Op != "on" || !calls[0].NetBoot {
			t.Errorf("%s saw %+v, want a power on (it was off) with the network boot", id, calls)
		}
	}
	h, err := e.reg.Store.Host(context.Background(), "52:54:00:0b:00:02")
	if err != nil || h.State != registry.StatePending || len(h.Power) != 1 || h.Power[0].Action != "cycle" || !h.Power[0].NetBoot {
		t.Errorf("r2: %s %+v %v", h.State, h.Power, err)
	}
}

// TestRolloutCLI: a rollout power-cycles its waves, so a selection with a
// host that has no BMC is refused before it starts; the dry run shows the
// waves; a started rollout cycles its canary only, and is paused, shown
// by status and hosts, and aborted through the CLI.
func TestRolloutCLI(t *testing.T) {
	e := newPowerEnv(t)
	c, _, stderr := e.cli()
	if code := c.rollout(context.Background(), []string{"start", "--version", "nope", "r1", "--wave-size", "1", "--yes"}); code != 1 || !strings.Contains(stderr.String(), `version "nope" is not in the catalog`) {
		t.Errorf("unknown version: exit %d: %s", code, stderr)
	}
	c, _, stderr = e.cli()
	if code := c.rollout(context.Background(), []string{"start", "--version", "v2", "r1", "nobmc", "--wave-size", "1", "--yes"}); code != 1 ||
		!strings.Contains(stderr.String(), "no bmc in the profile of nobmc (52:54:00:0b:00:09): a rollout power-cycles each wave") {
		t.Errorf("host without a BMC: exit %d: %s", code, stderr)
	}
	c, stdout, stderr := e.cli()
	if code := c.rollout(context.Background(), []string{"start", "--version", "v2", "--selector", "rack=a", "--canary", "1", "--wave-size", "1", "--dry-run"}); code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"dry run: 3 machines to v2 in 3 waves (nothing started)", "1 (canary)  52:54:00:0b:00:01  r1", "3           52:54:00:0b:00:03  r3"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := e.reg.Store.Host(context.Background(), "52:54:00:0b:00:01"); err == nil {
		t.Errorf("a dry run marked r1")
	}

	// Started for real: the canary is marked and cycled at once (the
	// doubles' machines install nothing, so it stays installing); pause,
	// status, abort through the CLI.
	c, stdout, stderr = e.cli()
	if code := c.rollout(context.Background(), []string{"start", "--version", "v2", "--selector", "rack=a", "--canary", "1", "--wave-size", "1", "--yes", "--reason", "CVE-2"}); code != 0 {
		t.Fatalf("start: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout.String(), "rollout r1: running, 3 machines to v2, wave 1 of 3") {
		t.Errorf("start printed:\n%s", stdout)
	}
	t.Logf("rackboot rollout start printed:\n%s", stdout)
	deadline := time.Now().Add(10 * time.Second)
	for len(e.machine["m1"].Calls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if calls := e.machine["m1"].Calls(); len(calls) != 1 || !calls[0].NetBoot {
		t.Fatalf("the canary's machine saw %+v, want a power on with the network boot", calls)
	}
	for _, id := range []string{"m2", "m3"} {
		if calls := e.machine[id].Calls(); len(calls) != 0 {
			t.Errorf("%s (a later wave) saw %+v", id, calls)
		}
	}
	h, err := e.reg.Store.Host(context.Background(), "52:54:00:0b:00:01")
	if err != nil || h.State != registry.StatePending || h.PendingVersion != "v2" || h.Reinstall == nil || !strings.HasPrefix(h.Reinstall.Reason, "rollout r1 wave 1") {
		t.Errorf("the canary's record: %s %q %+v %v", h.State, h.PendingVersion, h.Reinstall, err)
	}
	c, stdout, stderr = e.cli()
	if code := c.rollout(context.Background(), []string{"pause", "r1"}); code != 0 || !strings.Contains(stdout.String(), "rollout r1: paused") {
		t.Errorf("pause: exit %d: %s%s", code, stdout, stderr)
	}
	c, stdout, _ = e.cli()
	if code := c.hosts(context.Background(), nil); code != 0 || !strings.Contains(stdout.String(), "52:54:00:0b:00:01 r1: rollout r1 wave 1/3: installing (rollout paused)") {
		t.Errorf("hosts does not name the rollout:\n%s", stdout)
	}
	c, stdout, _ = e.cli()
	if code := c.rollout(context.Background(), []string{"status"}); code != 0 || !strings.Contains(stdout.String(), "r1  paused  v2") {
		t.Errorf("status:\n%s", stdout)
	}
	c, stdout, stderr = e.cli()
	if code := c.rollout(context.Background(), []string{"abort", "r1"}); code != 0 || !strings.Contains(stdout.String(), "rollout r1: aborted") {
		t.Errorf("abort: exit %d: %s%s", code, stdout, stderr)
	}
	c, _, stderr = e.cli()
	if code := c.rollout(context.Background(), []string{"resume", "r1"}); code != 1 || !strings.Contains(stderr.String(), "409") {
		t.Errorf("resume after abort: exit %d: %s", code, stderr)
	}
}
