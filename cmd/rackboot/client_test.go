package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/pki"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/NAME.golden, or rewrites it with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

const testAdminToken = "admin-0123456789abcdef0123456789abcdef"

// The example fleet's hosts the tests use.
const (
	macN01 = "52:54:00:77:00:01" // r1-n01, stable
	macN02 = "52:54:00:77:00:02" // r1-n02, stable
	macS01 = "52:54:00:77:00:04" // r1-s01, stable, storage
	macR2  = "52:54:00:78:00:01" // r2-n01, canary
	macOut = "52:54:00:99:00:01" // not in the profiles
)

// testClock is the registry's clock, read by the API's goroutines.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// adminEnv is a daemon's API over loopback: the registry in memory, the
// example fleet as profiles.
type adminEnv struct {
	t      *testing.T
	url    string
	set    *profiles.Set
	reg    *registry.Registry
	events *api.Events
	clock  *testClock
	tokens map[string]string // install token by MAC
	hc     *http.Client      // trusts the server's certificate
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	set, err := profiles.Load("../../examples")
	if err != nil {
		t.Fatalf("example fleet: %v", err)
	}
	e := &adminEnv{t: t, set: set, events: &api.Events{}, tokens: map[string]string{},
		clock: &testClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}}
	e.reg = &registry.Registry{Store: registry.NewMemory(), MaxAttempts: 3, Now: e.clock.Now, Notify: e.events.Changed}
	mux := http.NewServeMux()
	mux.Handle("/api/", &api.Server{Registry: e.reg, Fleet: set, Planner: profiles.Planner{}, AdminToken: testAdminToken, Events: e.events})
	ts := httptest.NewTLSServer(mux)
	e.hc = ts.Client()
	t.Cleanup(func() {
		e.events.Close() // ends the streams, so Close does not wait on them
		ts.Close()
	})
	e.url = ts.URL
	return e
}

// cli returns a command environment talking to the daemon with the admin
// token, and its output.
func (e *adminEnv) cli() (*cli, *syncBuffer, *syncBuffer) {
	return testCLI(map[string]string{"RACKBOOT_SERVER": e.url, "RACKBOOT_TOKEN": testAdminToken})
}

// testCLI is a command environment with env as its environment. Unless env
// names one, RACKBOOT_CA is the certificate every httptest TLS server
// presents.
func testCLI(env map[string]string) (*cli, *syncBuffer, *syncBuffer) {
	if _, ok := env["RACKBOOT_CA"]; !ok {
		env = maps.Clone(env)
		if env == nil {
			env = map[string]string{}
		}
		env["RACKBOOT_CA"] = testCAFile()
	}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	c := &cli{
		stdout: stdout, stderr: stderr,
		getenv:   func(k string) string { return env[k] },
		loc:      time.UTC,
		now:      func() time.Time { return time.Date(2026, 11, 25, 9, 59, 0, 0, time.UTC) },
		user:     "alice",
		terminal: func() (int, int, bool) { return 0, 0, false },
	}
	return c, stdout, stderr
}

// TestMain removes the CA file testCAFile wrote, if a test asked for it,
// and stops the embedded etcd, if a test started it.
func TestMain(m *testing.M) {
	code := m.Run()
	etcdtest.Stop()
	if testCAWritten.Load() {
		os.Remove(testCA())
	}
	os.Exit(code)
}

var testCAWritten atomic.Bool

var testCA = sync.OnceValue(func() string {
	testCAWritten.Store(true)
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	f, err := os.CreateTemp("", "rackboot-test-ca-*.pem")
	if err != nil {
		panic(err) // a test helper: the test cannot run
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}); err != nil {
		panic(err)
	}
	return f.Name()
})

// testCAFile is a PEM file of the certificate of httptest's TLS servers
// (the same for all of them).
func testCAFile() string { return testCA() }

// syncBuffer is a bytes.Buffer that a command's goroutine writes while the
// test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor waits until b holds want.
func waitFor(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in:\n%s", want, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustMAC(mac string) net.HardwareAddr {
	h, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	return h
}

// boot is a PXE boot of mac: a pending host gets an install token.
func (e *adminEnv) boot(mac string) {
	e.t.Helper()
	host, known := e.set.Lookup(mustMAC(mac))
	name := ""
	if known {
		name = host.Hostname
	}
	d, err := e.reg.Boot(context.Background(), mustMAC(mac), name, known, !known)
	if err != nil {
		e.t.Fatal(err)
	}
	e.tokens[mac] = d.Token
}

// start is the agent fetching its plan for version.
func (e *adminEnv) start(mac, version string) {
	e.t.Helper()
	v, ok := e.set.Version(version)
	if !ok {
		e.t.Fatalf("no version %s", version)
	}
	_, err := e.reg.Start(context.Background(), mustMAC(mac), e.tokens[mac], registry.Install{
		Version:       registry.Version{Name: v.Name, Number: v.Number},
		ImageSHA256:   v.Image.SHA256,
		ProfileDigest: "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// done is the agent's success after took.
func (e *adminEnv) done(mac string, took time.Duration, written int64) {
	e.t.Helper()
	e.clock.Add(took)
	h, err := e.reg.Store.Host(context.Background(), mac)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.reg.Writing(context.Background(), mustMAC(mac), e.tokens[mac]); err != nil {
		e.t.Fatal(err)
	}
	_, err = e.reg.Done(context.Background(), mustMAC(mac), e.tokens[mac], registry.Report{SHA256: h.Current.ImageSHA256, Bytes: written, WriteMS: took.Milliseconds()})
	if err != nil {
		e.t.Fatal(err)
	}
}

// fail is the agent's failure after took.
func (e *adminEnv) fail(mac string, took time.Duration, phase, msg string) {
	e.t.Helper()
	e.clock.Add(took)
	if _, err := e.reg.Fail(context.Background(), mustMAC(mac), e.tokens[mac], registry.Report{Phase: phase, Error: msg}); err != nil {
		e.t.Fatal(err)
	}
}

// agent sends an agent request of mac with its install token.
func (e *adminEnv) agent(path, mac, body string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens[mac])
	req.Header.Set(agentapi.MACHeader, mac)
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
}

// fleet is the fixture most tests share: two machines on the stable
// version (one after a failed attempt), one on the canary, one installing,
// one discovered, the rest never seen.
func (e *adminEnv) fleet() {
	e.boot(macN01)
	e.start(macN01, "demo-1.0")
	e.done(macN01, 4*time.Minute+5*time.Second, 5<<29)

	e.clock.Add(time.Minute)
	e.boot(macN02)
	e.start(macN02, "demo-1.0")
	e.fail(macN02, 2*time.Minute, "image", "disk /dev/sda vanished")
	e.clock.Add(time.Minute)
	e.boot(macN02)
	e.start(macN02, "demo-1.0")
	e.done(macN02, 3*time.Minute+30*time.Second, 5<<29)

	e.clock.Add(time.Minute)
	e.boot(macR2)
	e.start(macR2, "demo-1.1")
	e.done(macR2, 5*time.Minute, 3<<30)

	e.clock.Add(time.Minute)
	e.boot(macOut) // discovery on for it: a record, not in the profiles

	e.clock.Add(time.Minute)
	e.boot(macS01)
	e.start(macS01, "demo-1.0")
	e.clock.Add(10 * time.Second)
}

// runCmd runs an admin command and returns its exit code and output.
func runCmd(c *cli, cmd func(*cli, context.Context, []string) int, args ...string) int {
	return cmd(c, context.Background(), args)
}

func TestClientErrors(t *testing.T) {
	e := newAdminEnv(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("wrong-0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := t.TempDir()
	if err := os.WriteFile(filepath.Join(open, "admin.token"), []byte(testAdminToken+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Another appliance's CA: the test server's certificate does not
	// verify against it.
	other := t.TempDir()
	if _, err := pki.Ensure(other, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(other, pki.CAFile)
	// A port nothing listens on: one just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in stderr
	}{
		{"wrong token from the environment", map[string]string{"RACKBOOT_SERVER": e.url, "RACKBOOT_TOKEN": "nope"}, nil,
			"rackboot hosts: 401: wrong or missing admin token — read from $RACKBOOT_TOKEN\n"},
		{"wrong token from the data directory", map[string]string{"RACKBOOT_SERVER": e.url, "RACKBOOT_TOKEN": testAdminToken}, []string{"--data", dir},
			"rackboot hosts: 401: wrong or missing admin token — read from " + filepath.Join(dir, "admin.token") + "\n"},
		{"token file readable by others", map[string]string{"RACKBOOT_SERVER": e.url}, []string{"--data", open},
			"rackboot hosts: cannot read the admin token: api: admin token " + filepath.Join(open, "admin.token") + ": readable by others (mode 0644); chmod 600 it\n"},
		{"no token file", map[string]string{"RACKBOOT_SERVER": e.url}, []string{"--data", filepath.Join(dir, "nowhere")},
			"rackboot hosts: cannot read the admin token: open " + filepath.Join(dir, "nowhere", "admin.token") + ": no such file or directory\n"},
		{"daemon not running", map[string]string{"RACKBOOT_TOKEN": testAdminToken}, []string{"--server", closed},
			"rackboot hosts: cannot reach rackboot at " + closed + ": is `rackboot serve` running? (dial tcp " + ln.Addr().String() + ": connect: connection refused)\n"},
		{"bad server URL", map[string]string{"RACKBOOT_SERVER": "ftp://x", "RACKBOOT_TOKEN": testAdminToken}, nil,
			"rackboot hosts: --server \"ftp://x\": want a URL such as https://127.0.0.1:8443\n"},
		{"plain http refused before any request", map[string]string{"RACKBOOT_SERVER": "http://" + strings.TrimPrefix(e.url, "https://"), "RACKBOOT_TOKEN": testAdminToken}, nil,
			"rackboot hosts: --server \"http://" + strings.TrimPrefix(e.url, "https://") + "\": the rackboot API is served over HTTPS only (--https-port, 8443 by default), and the admin token is never sent in clear\n"},
		{"no CA", map[string]string{"RACKBOOT_SERVER": e.url, "RACKBOOT_TOKEN": testAdminToken, "RACKBOOT_CA": filepath.Join(dir, "none.pem")}, nil,
			"rackboot hosts: cannot read the appliance's CA: open " + filepath.Join(dir, "none.pem") + ": no such file or directory\n"},
		{"wrong CA", map[string]string{"RACKBOOT_SERVER": e.url, "RACKBOOT_TOKEN": testAdminToken, "RACKBOOT_CA": otherCA}, nil,
			"rackboot hosts: the server at " + e.url + " is not the appliance of the CA in " + otherCA + ": x509: certificate signed by unknown authority\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, stdout, stderr := testCLI(tt.env)
			if code := runCmd(c, (*cli).hosts, tt.args...); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			got := stderr.String()
			for _, hint := range []string{"\n(run as", "\n(on the appliance", "\n(nothing was sent"} {
				if i := strings.Index(got, hint); i >= 0 {
					got = got[:i+1] // the hint after the error
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if stdout.String() != "" {
				t.Errorf("stdout: %q", stdout.String())
			}
		})
	}
}

func TestServerURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://127.0.0.1:8443", "https://127.0.0.1:8443"},
		{"https://10.0.0.1:8443/", "https://10.0.0.1:8443"},
		{"rackboot.example:8443", "https://rackboot.example:8443"},
		{"http://127.0.0.1:8080", ""}, // the token would cross in clear
		{"https://rb.example/rackboot/", "https://rb.example/rackboot"},
		{"ftp://x", ""},
		{"https://", ""},
		{"http://h/?q=1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := serverURL(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestTokenPrecedence: an explicit --data wins over RACKBOOT_TOKEN, which
// wins over the default data directory; --server wins over
// RACKBOOT_SERVER.
func TestTokenPrecedence(t *testing.T) {
	dir := t.TempDir()
	fileTok := "file-0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte(fileTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        map[string]string
		flags      clientFlags
		base, from string
	}{
		{"defaults", map[string]string{"RACKBOOT_TOKEN": "env"}, clientFlags{}, defaultServer, "$RACKBOOT_TOKEN"},
		{"environment", map[string]string{"RACKBOOT_SERVER": "https://a:1", "RACKBOOT_TOKEN": "env"}, clientFlags{}, "https://a:1", "$RACKBOOT_TOKEN"},
		{"flags", map[string]string{"RACKBOOT_SERVER": "https://a:1", "RACKBOOT_TOKEN": "env"}, clientFlags{server: "https://b:2", data: dir}, "https://b:2", filepath.Join(dir, "admin.token")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := testCLI(tt.env)
			cl, err := c.client(&tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			if cl.base != tt.base || cl.tokenFrom != tt.from {
				t.Errorf("base %q from %q, want %q from %q", cl.base, cl.tokenFrom, tt.base, tt.from)
			}
			if cl.stream.Timeout != 0 || cl.http.Timeout == 0 {
				t.Errorf("timeouts: requests %v, streams %v", cl.http.Timeout, cl.stream.Timeout)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		pos  []string
		json bool
	}{
		{[]string{"a", "--json"}, []string{"a"}, true},
		{[]string{"--json", "a", "b"}, []string{"a", "b"}, true},
		{[]string{"a", "--", "--json"}, []string{"a", "--json"}, false},
		{nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			c, _, _ := testCLI(nil)
			fs, _ := c.flagSet("x", "x")
			j := fs.Bool("json", false, "")
			pos, _, ok := parseArgs(context.Background(), fs, tt.args, io.Discard)
			if !ok {
				t.Fatal("parse failed")
			}
			if diff := cmp.Diff(tt.pos, pos); diff != "" || *j != tt.json {
				t.Errorf("json %v, positional (-want +got):\n%s", *j, diff)
			}
		})
	}
}
