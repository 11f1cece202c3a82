package api

import (
	"cmp"
	"context"

	"github.com/rackboot/rackboot/agentapi"

	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

const adminTok = "admin-0123456789abcdef0123456789abcdef"

// The example fleet's hosts the tests use.
const (
	macN01 = "52:54:00:77:00:01" // r1-n01, BIOS, stable
	macN02 = "52:54:00:77:00:02" // r1-n02, UEFI, stable
	macS01 = "52:54:00:77:00:04" // r1-s01, storage layout with a preserved partition
	macR2  = "52:54:00:78:00:01" // r2-n01, canary
	macOut = "52:54:00:99:00:01" // not in the profiles
)

// clock is a test clock the handlers' goroutines read.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an appliance over loopback: the API and the iPXE scripts on one
// server, the registry in memory, the example fleet as profiles.
type env struct {
	t      *testing.T
	url    string
	set    *profiles.Set
	reg    *registry.Registry
	srv    *Server
	events *Events
	clock  *clock
}

func loadExamples(t *testing.T) *profiles.Set {
	t.Helper()
	set, err := profiles.Load("../examples")
	if err != nil {
		t.Fatalf("example fleet: %v", err)
	}
	return set
}

// newEnv starts an appliance; fleet nil means the example fleet.
func newEnv(t *testing.T, fleet Fleet) *env {
	t.Helper()
	set := loadExamples(t)
	if fleet == nil {
		fleet = set
	}
	e := &env{t: t, set: set, events: &Events{}, clock: &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}}
	e.reg = &registry.Registry{Store: registry.NewMemory(), MaxAttempts: 3, Now: e.clock.Now, Notify: e.events.Changed}
	e.srv = &Server{Registry: e.reg, Fleet: fleet, Planner: profiles.Planner{}, AdminToken: adminTok, Events: e.events}
	mux := http.NewServeMux()
	mux.Handle("/api/", e.srv)
	mux.Handle("/ipxe", &ipxe.Handler{Hosts: ipxeHosts{fleet, set}, Lifecycle: testLifecycle{e.reg}})
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		e.events.Close() // ends streams, so Close does not wait on them
		ts.Close()
	})
	e.url = ts.URL
	return e
}

// testLifecycle makes the scripts follow the registry, as the daemon's
// wiring does, for discovery off.
type testLifecycle struct{ reg *registry.Registry }

func (l testLifecycle) Boot(ctx context.Context, f ipxe.Facts, host *profiles.Host) (ipxe.Step, error) {
	var name string
	if host != nil {
		name = host.Hostname
	}
	d, err := l.reg.Boot(ctx, f.MAC, name, host != nil, false)
	steps := map[registry.BootKind]string{registry.BootInstall: ipxe.StepInstall, registry.BootLocal: ipxe.StepLocal, registry.BootFailed: ipxe.StepFailed, registry.BootHeld: ipxe.StepHeld}
	return ipxe.Step{Kind: cmp.Or(steps[d.Kind], ipxe.StepDefault), Token: d.Token, Message: d.Message}, err
}

// ipxeHosts gives the iPXE handler the test's fleet and the example
// fleet's default installer.
type ipxeHosts struct {
	Fleet
	set *profiles.Set
}

func (h ipxeHosts) DefaultInstaller() *profiles.Installer { return h.set.DefaultInstaller() }

var tokenRE = regexp.MustCompile(`rackboot\.token=([0-9a-f]+) `)

// boot fetches the machine's iPXE script and returns it with its token.
func (e *env) boot(mac, platform string) (script, token string) {
	e.t.Helper()
	hw, _ := net.ParseMAC(mac)
	code, body := e.do(http.MethodGet, "/ipxe?mac="+hyphen(hw)+"&arch=x86_64&platform="+platform, nil, nil)
	if code != http.StatusOK {
		e.t.Fatalf("script of %s: %d %s", mac, code, body)
	}
	if m := tokenRE.FindStringSubmatch(body); m != nil {
		token = m[1]
	}
	return body, token
}

func hyphen(hw net.HardwareAddr) string {
	b := []byte(hw.String())
	for i, c := range b {
		if c == ':' {
			b[i] = '-'
		}
	}
	return string(b)
}

// do sends a request; body is JSON-encoded unless it is a string.
func (e *env) do(method, path string, header map[string]string, body any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
		e.t.Errorf("%s %s: 401 without WWW-Authenticate", method, path)
	}
	return resp.StatusCode, string(b)
}

// agent sends an agent request for mac with token.
func (e *env) agent(method, path, mac, token string, body any) (int, string) {
	e.t.Helper()
	return e.do(method, path, map[string]string{"Authorization": "Bearer " + token, agentapi.MACHeader: mac}, body)
}

// admin sends an admin request and decodes a 200 answer into out.
func (e *env) admin(method, path string, body, out any) int {
	e.t.Helper()
	code, b := e.do(method, path, map[string]string{"Authorization": "Bearer " + adminTok}, body)
	if code == http.StatusOK && out != nil {
		if err := json.Unmarshal([]byte(b), out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return code
}

// mustOK fails the test unless code is want.
func (e *env) must(want int, code int, body string) {
	e.t.Helper()
	if code != want {
		e.t.Fatalf("status %d, want %d: %s", code, want, body)
	}
}

func (e *env) host(mac string) HostView {
	e.t.Helper()
	var v HostView
	if code := e.admin(http.MethodGet, "/api/hosts/"+mac, nil, &v); code != http.StatusOK {
		e.t.Fatalf("host %s: status %d", mac, code)
	}
	return v
}

// install runs a whole successful install of mac and returns its plan.
func (e *env) install(mac string) agentapi.PlanResponse {
	e.t.Helper()
	_, tok := e.boot(mac, "efi")
	if tok == "" {
		e.t.Fatalf("%s got no token", mac)
	}
	p := e.plan(mac, tok)
	e.writing(mac, tok, 1<<30)
	code, body := e.agent(http.MethodPost, "/api/agent/done", mac, tok, agentapi.Done{SHA256: p.Plan.Image.SHA256, Bytes: 1 << 30, DurationMS: 9000})
	e.must(http.StatusOK, code, body)
	return p
}

// plan is mac's agent fetching its plan, which must be served.
func (e *env) plan(mac, tok string) agentapi.PlanResponse {
	e.t.Helper()
	var p agentapi.PlanResponse
	code, body := e.agent(http.MethodGet, "/api/agent/plan", mac, tok, nil)
	e.must(http.StatusOK, code, body)
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// writing is mac's agent reporting that it wrote n bytes of the image: a
// success report needs it.
func (e *env) writing(mac, tok string, n int64) {
	e.t.Helper()
	code, body := e.agent(http.MethodPost, "/api/agent/progress", mac, tok, agentapi.Progress{Phase: agentapi.PhaseImage, Done: n, Total: n})
	e.must(http.StatusNoContent, code, body)
}
