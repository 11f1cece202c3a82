package api

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// agentCalls are one valid request to each agent endpoint.
var agentCalls = []struct {
	method, path string
	body         any
}{
	{http.MethodGet, "/api/agent/plan", nil},
	{http.MethodPost, "/api/agent/progress", agentapi.Progress{Phase: "image", Done: 1, Total: 2, Rate: 1}},
	{http.MethodPost, "/api/agent/log", agentapi.Log{Lines: []string{"hello"}}},
	{http.MethodPost, "/api/agent/done", agentapi.Done{SHA256: strings.Repeat("0", 64)}},
	{http.MethodPost, "/api/agent/failed", agentapi.Failed{Error: "boom"}},
}

// adminCalls are one valid request to each admin endpoint.
var adminCalls = []struct {
	method, path string
	body         any
}{
	{http.MethodGet, "/api/hosts", nil},
	{http.MethodDelete, "/api/hosts?state=discovered", nil},
	{http.MethodGet, "/api/hosts/" + macN01, nil},
	{http.MethodGet, "/api/hosts/" + macN01 + "/history", nil},
	{http.MethodGet, "/api/hosts/" + macN01 + "/log", nil},
	{http.MethodGet, "/api/versions", nil},
	{http.MethodPost, "/api/reinstall", ReinstallRequest{MACs: []string{macN01}, DryRun: true}},
	{http.MethodGet, "/api/events", nil},
}

func TestUnauthorized(t *testing.T) {
	e := newEnv(t, nil)
	_, old := e.boot(macN01, "efi")
	if _, again := e.boot(macN01, "efi"); again != old {
		t.Fatalf("the script fetched again carries token %q, want the same %q", again, old)
	}
	// Attempt 1 fails before its plan; the next script is for attempt 2.
	code, body := e.agent(http.MethodPost, "/api/agent/failed", macN01, old, agentapi.Failed{Phase: "disk", Error: "no disk"})
	e.must(http.StatusOK, code, body)
	_, tokN01 := e.boot(macN01, "efi")
	_, tokN02 := e.boot(macN02, "efi")
	if old == "" || tokN01 == "" || tokN02 == "" || old == tokN01 || tokN01 == tokN02 {
		t.Fatalf("tokens %q %q %q: want three distinct ones", old, tokN01, tokN02)
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	agentAuth := map[string]map[string]string{
		"no token":                   {agentapi.MACHeader: macN01},
		"no MAC header":              bearer(tokN01),
		"wrong token":                {"Authorization": "Bearer " + strings.Repeat("0", 64), agentapi.MACHeader: macN01},
		"basic auth":                 {"Authorization": "Basic " + tokN01, agentapi.MACHeader: macN01},
		"admin token":                {"Authorization": "Bearer " + adminTok, agentapi.MACHeader: macN01},
		"token of another MAC":       {"Authorization": "Bearer " + tokN02, agentapi.MACHeader: macN01},
		"token for a MAC not known":  {"Authorization": "Bearer " + tokN01, agentapi.MACHeader: macOut},
		"previous attempt's token":   {"Authorization": "Bearer " + old, agentapi.MACHeader: macN01},
		"token with trailing junk":   {"Authorization": "Bearer " + tokN01 + "x", agentapi.MACHeader: macN01},
		"malformed MAC header":       {"Authorization": "Bearer " + tokN01, agentapi.MACHeader: "52:54:00"},
		"lower-case scheme, no MAC":  {"Authorization": "bearer " + tokN01},
		"empty bearer":               {"Authorization": "Bearer ", agentapi.MACHeader: macN01},
		"token of another MAC (B→A)": {"Authorization": "Bearer " + tokN01, agentapi.MACHeader: macN02},
	}
	for name, h := range agentAuth {
		for _, c := range agentCalls {
			t.Run("agent/"+name+"/"+c.path, func(t *testing.T) {
				if code, body := e.do(c.method, c.path, h, c.body); code != http.StatusUnauthorized {
					t.Errorf("status %d, want 401: %s", code, body)
				}
			})
		}
	}
	adminAuth := map[string]map[string]string{
		"no token":      nil,
		"wrong token":   bearer(adminTok + "x"),
		"agent token":   bearer(tokN01),
		"agent request": {"Authorization": "Bearer " + tokN01, agentapi.MACHeader: macN01},
		"token prefix":  bearer(adminTok[:len(adminTok)-1]),
	}
	for name, h := range adminAuth {
		for _, c := range adminCalls {
			t.Run("admin/"+name+"/"+c.method+c.path, func(t *testing.T) {
				if code, body := e.do(c.method, c.path, h, c.body); code != http.StatusUnauthorized {
					t.Errorf("status %d, want 401: %s", code, body)
				}
			})
		}
	}
	// The refused requests changed nothing: the valid tokens still work.
	for mac, tok := range map[string]string{macN01: tokN01, macN02: tokN02} {
		if code, body := e.agent(http.MethodGet, "/api/agent/plan", mac, tok, nil); code != http.StatusOK {
			t.Errorf("plan of %s with its own token: %d %s", mac, code, body)
		}
	}
	for _, c := range adminCalls[:5] {
		if code := e.admin(c.method, c.path, c.body, nil); code != http.StatusOK {
			t.Errorf("%s %s with the admin token: %d", c.method, c.path, code)
		}
	}
}

func TestTokenExpires(t *testing.T) {
	e := newEnv(t, nil)
	_, tok := e.boot(macN01, "efi")
	e.clock.Add(registry.DefaultTokenTTL)
	if code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil); code != http.StatusUnauthorized {
		t.Errorf("plan with an expired token: %d %s", code, body)
	}
	// The plan fetch renews the lifetime; reports within it are accepted.
	_, tok = e.boot(macN01, "efi")
	e.clock.Add(registry.DefaultTokenTTL - time.Minute)
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	e.clock.Add(registry.DefaultTokenTTL - time.Minute)
	code, body = e.agent(http.MethodPost, "/api/agent/progress", macN01, tok, agentapi.Progress{Phase: "image"})
	e.must(http.StatusNoContent, code, body)
	e.clock.Add(time.Minute)
	if code, body := e.agent(http.MethodPost, "/api/agent/done", macN01, tok, agentapi.Done{}); code != http.StatusUnauthorized {
		t.Errorf("done after the token expired: %d %s", code, body)
	}
}

func TestInstallFlow(t *testing.T) {
	e := newEnv(t, nil)
	host, _ := e.set.Lookup(macOf(macN01))

	if v := e.host(macN01); v.State != registry.StatePending || !v.InProfiles || v.Hostname != "r1-n01" {
		t.Errorf("never seen host = %+v, want pending from the profiles", v)
	}
	script, tok := e.boot(macN01, "pcbios")
	if tok == "" || !strings.Contains(script, "rackboot.mac="+macN01+" rackboot.token="+tok) {
		t.Fatalf("installer script lacks the token:\n%s", script)
	}
	code, body := e.agent(http.MethodPost, "/api/agent/log", macN01, tok, agentapi.Log{Lines: []string{"rackboot-agent: network up", "\x1b]0;pwned\x07 title"}})
	e.must(http.StatusNoContent, code, body)

	code, body = e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	var p agentapi.PlanResponse
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	want := registry.Version{Name: host.Version.Name, Number: host.Version.Number}
	if p.Host != "r1-n01" || p.MAC != macN01 || p.Attempt != 1 || p.AttemptID != 1 || p.Version != (agentapi.Version{Name: want.Name, Number: want.Number}) {
		t.Errorf("plan header = %+v %+v %d %d %+v", p.Host, p.MAC, p.Attempt, p.AttemptID, p.Version)
	}
	if img := p.Plan.Image; img == nil || img.SHA256 != host.Version.Image.SHA256 ||
		img.URL != e.url+"/artifacts/"+host.Version.Image.URL+"?mac=52-54-00-77-00-01" {
		t.Errorf("plan image = %+v", p.Plan.Image)
	}
	if ud := configFile(p.Plan, "user-data"); !strings.Contains(ud, "\n    passwd: $6$") {
		t.Errorf("the plan, served with the token, lacks the users' secrets:\n%s", ud)
	}
	// A second fetch (an agent retrying) gets the same attempt.
	code, body = e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	if !strings.Contains(body, `"attempt_id": 1`) {
		t.Errorf("second plan fetch started another attempt: %s", body)
	}

	code, body = e.agent(http.MethodPost, "/api/agent/progress", macN01, tok, agentapi.Progress{Phase: "image", Done: 512, Total: 2048, Rate: 256})
	e.must(http.StatusNoContent, code, body)
	v := e.host(macN01)
	if v.State != registry.StateInstalling || v.Progress == nil || v.Progress.Done != 512 || v.Progress.ETASeconds != 6 {
		t.Errorf("installing host = state %s, progress %+v", v.State, v.Progress)
	}
	if strings.Contains(mustJSON(t, v), "token") {
		t.Errorf("host view shows the token digest: %s", mustJSON(t, v))
	}
	code, body = e.agent(http.MethodPost, "/api/agent/log", macN01, tok, agentapi.Log{Lines: []string{"image written"}})
	e.must(http.StatusNoContent, code, body)

	e.clock.Add(90 * time.Second)
	code, body = e.agent(http.MethodPost, "/api/agent/done", macN01, tok, agentapi.Done{SHA256: strings.ToUpper(p.Plan.Image.SHA256), Bytes: 4 << 30, DurationMS: 80000})
	e.must(http.StatusOK, code, body)
	if !strings.Contains(body, `"state": "installed"`) {
		t.Errorf("done answered %s", body)
	}
	v = e.host(macN01)
	if v.State != registry.StateInstalled || v.Version != want || v.Progress != nil || v.Current != nil {
		t.Errorf("installed host = %+v", v)
	}

	var hist []registry.Attempt
	if code := e.admin(http.MethodGet, "/api/hosts/"+macN01+"/history?log=1", nil, &hist); code != http.StatusOK {
		t.Fatalf("history: %d", code)
	}
	wantHist := []registry.Attempt{{
		ID: 1, Number: 1, MAC: macN01, Hostname: "r1-n01", Version: want, ImageSHA256: p.Plan.Image.SHA256,
		Reason: "first install", Started: e.clock.Now().Add(-90 * time.Second), Writing: e.clock.Now().Add(-90 * time.Second),
		Finished: e.clock.Now(), Result: registry.ResultSuccess,
		BytesWritten: 4 << 30, DurationMS: 90000, WriteMS: 80000,
		Log: []string{"rackboot-agent: network up", "\ufffd]0;pwned\ufffd title", "image written"},
	}}
	if diff := cmp.Diff(wantHist, hist, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".ProfileDigest" }, cmp.Ignore())); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if len(hist) == 1 && len(hist[0].ProfileDigest) != 64 {
		t.Errorf("profile digest %q, want a hex SHA-256", hist[0].ProfileDigest)
	}

	// The token died with the attempt, but for the same done sent again
	// (its answer lost), answered with the host as it is, no change, for
	// ten minutes.
	if code, _ := e.agent(http.MethodPost, "/api/agent/progress", macN01, tok, agentapi.Progress{Phase: agentapi.PhaseReport}); code != http.StatusUnauthorized {
		t.Errorf("progress after done: %d, want 401", code)
	}
	code, body = e.agent(http.MethodPost, "/api/agent/done", macN01, tok, agentapi.Done{SHA256: p.Plan.Image.SHA256, Bytes: 4 << 30})
	e.must(http.StatusOK, code, body)
	if !strings.Contains(string(body), `"installed"`) || len(e.history(macN01)) != 1 {
		t.Errorf("done sent again: %s; history %d attempts", body, len(e.history(macN01)))
	}
	e.clock.Add(10 * time.Minute)
	if code, _ := e.agent(http.MethodPost, "/api/agent/done", macN01, tok, agentapi.Done{}); code != http.StatusUnauthorized {
		t.Errorf("done sent again ten minutes later: %d, want 401", code)
	}
	// Installed: the local disk, per firmware, with no token.
	script, tok = e.boot(macN01, "pcbios")
	if tok != "" || !strings.Contains(script, "\nsanboot --no-describe --drive 0x80 || goto local_failed\n") {
		t.Errorf("BIOS script of an installed host:\n%s", script)
	}
	script, _ = e.boot(macN01, "efi")
	if strings.Contains(script, "sanboot") || strings.Contains(script, "kernel") || !strings.HasSuffix(script, "\nexit 1\n") {
		t.Errorf("UEFI script of an installed host:\n%s", script)
	}
	if hist := e.history(macN01); len(hist) != 1 {
		t.Errorf("booting an installed host changed its history: %d attempts", len(hist))
	}
}

// changedFleet is the example fleet after an admin edited every host's
// version: an installed machine must not notice.
type changedFleet struct {
	*profiles.Set
	v *profiles.Version
}

func (f changedFleet) Lookup(mac net.HardwareAddr) (*profiles.Host, bool) {
	h, ok := f.Set.Lookup(mac)
	if !ok {
		return nil, false
	}
	c := *h
	c.Version = f.v
	return &c, true
}

func TestInstalledIgnoresProfileChanges(t *testing.T) {
	set := loadExamples(t)
	f := &swapFleet{Fleet: set}
	e := newEnv(t, f)
	first := e.install(macN01)
	other := otherVersion(t, set, first.Version.Name)
	f.Fleet = changedFleet{set, other}
	script, tok := e.boot(macN01, "efi")
	if tok != "" || strings.Contains(script, "kernel") {
		t.Errorf("an installed host whose profile changed got:\n%s", script)
	}
	if v := e.host(macN01); v.State != registry.StateInstalled || v.Version.Name != first.Version.Name || v.ProfileVersion.Name != other.Name {
		t.Errorf("host = state %s, version %+v, profile version %+v", v.State, v.Version, v.ProfileVersion)
	}
}

// otherVersion is a version of the catalog other than name.
func otherVersion(t *testing.T, set *profiles.Set, name string) *profiles.Version {
	t.Helper()
	for _, v := range set.Versions() {
		if v.Name != name {
			return v
		}
	}
	t.Fatalf("the example fleet needs two versions; it has only %s", name)
	return nil
}

// swapFleet lets a test change the profiles under a running server.
type swapFleet struct{ Fleet }

func TestReinstallFlow(t *testing.T) {
	e := newEnv(t, nil)
	first := e.install(macN01)
	other := otherVersion(t, e.set, first.Version.Name)
	var resp ReinstallResponse
	code := e.admin(http.MethodPost, "/api/reinstall", ReinstallRequest{MACs: []string{"52-54-00-77-00-01"}, Reason: "CVE-2026-0001", Version: other.Name, By: "alice"}, &resp)
	if code != http.StatusOK || !cmp.Equal(resp.Reinstalled, []string{macN01}) {
		t.Fatalf("reinstall: %d %+v", code, resp)
	}
	v := e.host(macN01)
	if v.State != registry.StatePending || v.PendingVersion != other.Name || v.Reinstall == nil || v.Reinstall.Reason != "CVE-2026-0001" ||
		v.Reinstall.By != "alice via admin API from 127.0.0.1" || v.Version.Name != first.Version.Name {
		t.Errorf("host after reinstall = %+v", v)
	}
	second := e.install(macN01)
	if second.Version.Name != other.Name || second.Attempt != 1 || second.AttemptID != 2 {
		t.Errorf("reinstall plan = %+v %d %d, want %s, attempt 1, ID 2", second.Version, second.Attempt, second.AttemptID, other.Name)
	}
	hist := e.history(macN01)
	if len(hist) != 2 || hist[1].Reason != "reinstall: CVE-2026-0001" || hist[1].Result != registry.ResultSuccess {
		t.Errorf("history after reinstall = %+v", hist)
	}
	if v := e.host(macN01); v.Version.Name != other.Name || v.PendingVersion != "" {
		t.Errorf("host = version %+v, pending %q", v.Version, v.PendingVersion)
	}
}

func (e *env) history(mac string) []registry.Attempt {
	e.t.Helper()
	var hist []registry.Attempt
	if code := e.admin(http.MethodGet, "/api/hosts/"+mac+"/history", nil, &hist); code != http.StatusOK {
		e.t.Fatalf("history of %s: %d", mac, code)
	}
	return hist
}

func TestFailuresUntilMax(t *testing.T) {
	e := newEnv(t, nil)
	for n := 1; n <= 2; n++ {
		_, tok := e.boot(macN02, "efi")
		code, body := e.agent(http.MethodGet, "/api/agent/plan", macN02, tok, nil)
		e.must(http.StatusOK, code, body)
		code, body = e.agent(http.MethodPost, "/api/agent/failed", macN02, tok, agentapi.Failed{Phase: "disk", Error: "no disk of at least 4 GiB"})
		e.must(http.StatusOK, code, body)
		var r agentapi.Result
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.State != string(registry.StatePending) || r.Attempt != n {
			t.Fatalf("failure %d answered %s", n, body)
		}
	}
	// Attempt 3 is cut short by a reboot in the middle of the install.
	_, tok := e.boot(macN02, "efi")
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN02, tok, nil)
	e.must(http.StatusOK, code, body)
	script, tok2 := e.boot(macN02, "efi")
	if tok2 != "" || strings.Contains(script, "kernel") || !strings.Contains(script, "its install failed and will not be retried") ||
		!strings.Contains(script, "rebooted during install") {
		t.Errorf("script after %d failed attempts:\n%s", 3, script)
	}
	v := e.host(macN02)
	if v.State != registry.StateFailed || v.Attempt != 3 || !strings.Contains(v.LastError, "rebooted") {
		t.Errorf("host = %+v", v)
	}
	var results []string
	for _, a := range e.history(macN02) {
		results = append(results, string(a.Result)+" "+a.Phase+": "+a.Error)
	}
	wantResults := []string{
		"failed disk: no disk of at least 4 GiB",
		"failed disk: no disk of at least 4 GiB",
		"failed : the machine PXE-booted again before its install finished (rebooted during install)",
	}
	if diff := cmp.Diff(wantResults, results); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	// Failed stays failed: the token of the last attempt is dead too.
	if code, _ := e.agent(http.MethodGet, "/api/agent/plan", macN02, tok, nil); code != http.StatusUnauthorized {
		t.Errorf("plan of a failed host: %d, want 401", code)
	}
	if _, tok := e.boot(macN02, "efi"); tok != "" {
		t.Error("a failed host got a token at its next boot")
	}
	var resp ReinstallResponse
	e.admin(http.MethodPost, "/api/reinstall", ReinstallRequest{MACs: []string{macN02}, Reason: "disk replaced"}, &resp)
	if _, tok := e.boot(macN02, "efi"); tok == "" {
		t.Error("no installer after reinstall of a failed host")
	}
}

// TestForgedDone is defect 1's last step: a success report that is not
// consistent with the install — before any image progress, or with a byte
// count other than the image's — is refused and changes nothing.
func TestForgedDone(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.Planner = profiles.Planner{ImageSizes: func(string, string) (int64, int64, error) { return 1 << 20, 4 << 20, nil }}
	_, tok := e.boot(macN01, "efi")
	p := e.plan(macN01, tok)
	forged := agentapi.Done{SHA256: p.Plan.Image.SHA256, Bytes: 1}
	code, body := e.agent(http.MethodPost, "/api/agent/done", macN01, tok, forged)
	if code != http.StatusConflict || !strings.Contains(body, "never reported writing") {
		t.Errorf("done before any image progress: %d %s, want 409", code, body)
	}
	if v := e.host(macN01); v.State != registry.StateInstalling {
		t.Errorf("host after a refused report = %s, want still installing", v.State)
	}
	e.writing(macN01, tok, 1<<20)
	code, body = e.agent(http.MethodPost, "/api/agent/done", macN01, tok, forged)
	if code != http.StatusConflict || !strings.Contains(body, "the image is 4194304 bytes") {
		t.Errorf("done with 1 byte: %d %s, want 409", code, body)
	}
	forged.Bytes = 0
	code, body = e.agent(http.MethodPost, "/api/agent/done", macN01, tok, forged)
	if code != http.StatusConflict {
		t.Errorf("done with 0 bytes: %d %s, want 409", code, body)
	}
	if v := e.host(macN01); v.State != registry.StateInstalling {
		t.Errorf("host after refused reports = %s, want still installing", v.State)
	}
	forged.Bytes = 4 << 20 // the machine's own agent's report
	code, body = e.agent(http.MethodPost, "/api/agent/done", macN01, tok, forged)
	e.must(http.StatusOK, code, body)
}

func TestDigestMismatch(t *testing.T) {
	e := newEnv(t, nil)
	_, tok := e.boot(macN01, "efi")
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	e.writing(macN01, tok, 1<<20)
	code, body = e.agent(http.MethodPost, "/api/agent/done", macN01, tok, agentapi.Done{SHA256: strings.Repeat("ab", 32)})
	e.must(http.StatusConflict, code, body)
	if v := e.host(macN01); v.State != registry.StatePending || !strings.Contains(v.LastError, "report") {
		t.Errorf("host after a wrong digest = %s: %s", v.State, v.LastError)
	}
}

// noLayout is the example fleet with the layout of every host removed.
type noLayout struct{ *profiles.Set }

func (f noLayout) Lookup(mac net.HardwareAddr) (*profiles.Host, bool) {
	h, ok := f.Set.Lookup(mac)
	if !ok {
		return nil, false
	}
	c := *h
	c.Layout = nil
	return &c, true
}

func TestPlanErrorCountsAsAttempt(t *testing.T) {
	set := loadExamples(t)
	e := newEnv(t, noLayout{set})
	_, tok := e.boot(macN01, "efi")
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusConflict, code, body)
	if !strings.Contains(body, "no layout") {
		t.Errorf("plan error = %s, want the reason", body)
	}
	hist := e.history(macN01)
	if len(hist) != 1 || hist[0].Result != registry.ResultFailed || hist[0].Phase != "plan" {
		t.Errorf("history = %+v, want one attempt failed in phase plan", hist)
	}
	if _, tok := e.boot(macN01, "efi"); tok == "" {
		t.Error("no second attempt after a plan error")
	}
}

// TestHeld: a host whose version fails the appliance's catalog check
// (Server.Held, the registry's Hold) gets no installer and no token, the
// hosts view says why, and an agent that got its token before the check
// failed is refused its plan, so nothing is written.
func TestHeld(t *testing.T) {
	e := newEnv(t, nil)
	var mu sync.Mutex
	held := map[string]string{} // MAC → why
	var asked []string          // pending versions asked about
	e.reg.Hold = func(mac net.HardwareAddr, pendingVersion string) string {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, pendingVersion)
		return held[mac.String()]
	}
	e.srv.Held = e.reg.Hold

	_, tok := e.boot(macN01, "efi") // not held yet: a token
	if tok == "" {
		t.Fatal("no token before the hold")
	}
	why := "catalog.yaml:21: version demo-1.0: image demo-1.0.img.zst: no such file in the artifacts directory"
	mu.Lock()
	held[macN01] = why
	mu.Unlock()
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusConflict, code, body)
	if !strings.Contains(body, "held, nothing is written: "+why) {
		t.Errorf("plan of a held host = %s", body)
	}
	script, tok := e.boot(macN01, "efi")
	if tok != "" || !strings.Contains(script, "is held") || !strings.Contains(script, "no such file in the artifacts directory") {
		t.Errorf("script of a held host (token %q):\n%s", tok, script)
	}
	if h := e.host(macN01); h.State != registry.StatePending || h.Held != why {
		t.Errorf("host view: state %s, held %q; want pending, held %q", h.State, h.Held, why)
	}
	if h := e.host(macN02); h.Held != "" {
		t.Errorf("a host not held shows %q", h.Held)
	}
	// A reinstall asks about the version it names.
	var rr ReinstallResponse
	e.must(http.StatusOK, e.admin(http.MethodPost, "/api/reinstall", ReinstallRequest{MACs: []string{macN02}, Version: "demo-1.1", Reason: "canary"}, &rr), "")
	mu.Lock()
	asked = nil
	mu.Unlock()
	e.host(macN02)
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != "demo-1.1" {
		t.Errorf("hold asked about %q, want the reinstall's version demo-1.1", asked)
	}
}

func TestAgentBadReports(t *testing.T) {
	e := newEnv(t, nil)
	_, tok := e.boot(macN01, "efi")
	tests := []struct {
		name, path string
		body       any
		want       int
	}{
		{"progress not JSON", "/api/agent/progress", "phase=write", http.StatusBadRequest},
		{"progress unknown field", "/api/agent/progress", `{"phase":"write","extra":1}`, http.StatusBadRequest},
		{"progress bad phase", "/api/agent/progress", agentapi.Progress{Phase: "Write Image"}, http.StatusBadRequest},
		{"progress negative", "/api/agent/progress", agentapi.Progress{Phase: "image", Done: -1}, http.StatusBadRequest},
		{"progress negative fetched", "/api/agent/progress", agentapi.Progress{Phase: "image", Fetched: -1}, http.StatusBadRequest},
		{"done negative reused", "/api/agent/done", agentapi.Done{Bytes: 10, Reused: -1}, http.StatusBadRequest},
		{"done written beyond the image", "/api/agent/done", agentapi.Done{Bytes: 10, Written: 11}, http.StatusBadRequest},
		{"done reused beyond the image", "/api/agent/done", agentapi.Done{Bytes: 10, Reused: 11}, http.StatusBadRequest},
		{"progress more from peers than fetched", "/api/agent/progress", agentapi.Progress{Phase: "image", Fetched: 5, FetchedPeers: 6}, http.StatusBadRequest},
		{"done more from peers than fetched", "/api/agent/done", agentapi.Done{Bytes: 10, Fetched: 5, FetchedPeers: 6}, http.StatusBadRequest},
		{"done negative from peers", "/api/agent/done", agentapi.Done{Bytes: 10, Fetched: 5, FetchedPeers: -1}, http.StatusBadRequest},
		{"log too many lines", "/api/agent/log", agentapi.Log{Lines: make([]string, maxLogLines+1)}, http.StatusBadRequest},
		{"log too large", "/api/agent/log", agentapi.Log{Lines: []string{strings.Repeat("x", maxLogBody)}}, http.StatusRequestEntityTooLarge},
		{"done bad digest", "/api/agent/done", agentapi.Done{SHA256: "xyz"}, http.StatusBadRequest},
		{"done before the plan", "/api/agent/done", agentapi.Done{}, http.StatusConflict},
		{"failed without error", "/api/agent/failed", agentapi.Failed{Phase: "disk"}, http.StatusBadRequest},
		{"two objects", "/api/agent/failed", `{"error":"a"}{"error":"b"}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := e.agent(http.MethodPost, tt.path, macN01, tok, tt.body); code != tt.want {
				t.Errorf("status %d, want %d: %s", code, tt.want, body)
			}
		})
	}
	if code, body := e.agent(http.MethodPut, "/api/agent/done", macN01, tok, agentapi.Done{}); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT done: %d %s", code, body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// configFile is the content of the plan's config drive file name.
func configFile(p agentapi.Plan, name string) string {
	for _, f := range p.ConfigDrive {
		if f.Name == name {
			return f.Content
		}
	}
	return ""
}

// TestReinstallWipeData: `reinstall --wipe-data` puts WipeData into the
// plan of the first attempt after it, the one a second fetch of that
// attempt gets too, and no other; the history records who allowed it,
// when and why.
func TestReinstallWipeData(t *testing.T) {
	e := newEnv(t, nil)
	if p := e.install(macN01); p.Plan.WipeData {
		t.Fatal("a first install's plan allows wiping data")
	}
	if code := e.admin(http.MethodPost, "/api/reinstall", ReinstallRequest{MACs: []string{macN01}, WipeData: true}, nil); code != http.StatusBadRequest {
		t.Errorf("wipe_data without a reason: %d, want 400", code)
	}
	req := ReinstallRequest{MACs: []string{macN01}, Reason: "layout redone", By: "alice", WipeData: true}
	if code := e.admin(http.MethodPost, "/api/reinstall", req, nil); code != http.StatusOK {
		t.Fatalf("reinstall --wipe-data: %d", code)
	}
	if v := e.host(macN01); v.Reinstall == nil || !v.Reinstall.WipeData {
		t.Errorf("host after reinstall --wipe-data: request %+v", v.Reinstall)
	}

	plan := func(tok string) agentapi.PlanResponse {
		t.Helper()
		code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
		e.must(http.StatusOK, code, body)
		var p agentapi.PlanResponse
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, tok := e.boot(macN01, "efi")
	if p := plan(tok); !p.Plan.WipeData || p.Attempt != 1 {
		t.Errorf("attempt %d after reinstall --wipe-data: WipeData %v, want attempt 1 with it", p.Attempt, p.Plan.WipeData)
	}
	if p := plan(tok); !p.Plan.WipeData {
		t.Error("the same attempt's second fetch lost WipeData")
	}
	code, body := e.agent(http.MethodPost, "/api/agent/failed", macN01, tok, agentapi.Failed{Phase: agentapi.PhaseImage, Error: "connection reset"})
	e.must(http.StatusOK, code, body)
	_, tok = e.boot(macN01, "efi")
	if p := plan(tok); p.Plan.WipeData || p.Attempt != 2 {
		t.Errorf("attempt %d: WipeData %v, want attempt 2 without it", p.Attempt, p.Plan.WipeData)
	}
	hist := e.history(macN01)
	if len(hist) != 3 {
		t.Fatalf("history: %+v", hist)
	}
	if w := hist[1].WipeData; w == nil || w.By != "alice via admin API from 127.0.0.1" || w.Reason != "layout redone" || w.At.IsZero() || !w.WipeData {
		t.Errorf("the wiping attempt records %+v, want who, when and why", w)
	}
	if hist[0].WipeData != nil || hist[2].WipeData != nil {
		t.Errorf("attempts without the permission record it: %+v, %+v", hist[0].WipeData, hist[2].WipeData)
	}
}

// TestPlanArtifactsPort: with the agent API on HTTPS and no BaseURL, the
// plan's artifact URLs name the plain HTTP port on the address the agent
// reached, not the API's port.
func TestPlanArtifactsPort(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.ArtifactsPort = 8080
	_, tok := e.boot(macN01, "pcbios")
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	var p agentapi.PlanResponse
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if img := p.Plan.Image; img == nil || !strings.HasPrefix(img.URL, "http://127.0.0.1:8080/artifacts/") {
		t.Errorf("plan image = %+v, want it on http://127.0.0.1:8080", p.Plan.Image)
	}
}

// installedPlanner records the installed version each plan was made with.
type installedPlanner struct {
	profiles.Planner
	installed []string
}

func (p *installedPlanner) Plan(h *profiles.Host, v, installed *profiles.Version, base string) (agentapi.Plan, error) {
	name := "(none)"
	if installed != nil {
		name = installed.Name
	}
	p.installed = append(p.installed, name)
	return p.Planner.Plan(h, v, installed, base)
}

// TestPlanInstalled: the planner learns the version the host runs, from
// the registry, for a chunked image's seed.
func TestPlanInstalled(t *testing.T) {
	e := newEnv(t, nil)
	pl := &installedPlanner{}
	e.srv.Planner = pl
	first := e.install(macN01)
	other := otherVersion(t, e.set, first.Version.Name)
	e.admin(http.MethodPost, "/api/reinstall", ReinstallRequest{MACs: []string{macN01}, Version: other.Name}, nil)
	e.install(macN01)
	if want := []string{"(none)", first.Version.Name}; !cmp.Equal(pl.installed, want) {
		t.Errorf("installed versions given to the planner = %v, want %v", pl.installed, want)
	}
}

// TestChunkedReports: a chunked install's progress carries what was
// fetched (from peers too) and reused to the host view, and its success
// report what it wrote, fetched (from peers too) and reused to the
// history.
func TestChunkedReports(t *testing.T) {
	e := newEnv(t, nil)
	e.srv.Planner = profiles.Planner{ImageSizes: func(string, string) (int64, int64, error) { return 1 << 20, 4 << 20, nil }}
	_, tok := e.boot(macN01, "efi")
	p := e.plan(macN01, tok)
	code, body := e.agent(http.MethodPost, "/api/agent/progress", macN01, tok, agentapi.Progress{Phase: agentapi.PhaseImage, Done: 3 << 20, Total: 4 << 20, Fetched: 1 << 18, Reused: 3<<20 - 1<<18, FetchedPeers: 1 << 17})
	e.must(http.StatusNoContent, code, body)
	if v := e.host(macN01); v.Progress == nil || v.Progress.Fetched != 1<<18 || v.Progress.Reused != 3<<20-1<<18 || v.Progress.FetchedPeers != 1<<17 {
		t.Errorf("progress in the host view = %+v", v.Progress)
	}
	code, body = e.agent(http.MethodPost, "/api/agent/done", macN01, tok, agentapi.Done{SHA256: p.Plan.Image.SHA256, Bytes: 4 << 20, Written: 1 << 20, Fetched: 1 << 19, Reused: 3 << 20, FetchedPeers: 1 << 18})
	e.must(http.StatusOK, code, body)
	hist := e.history(macN01)
	if len(hist) != 1 {
		t.Fatalf("history %+v", hist)
	}
	if a := hist[0]; a.BytesWritten != 1<<20 || a.BytesFetched != 1<<19 || a.BytesReused != 3<<20 || a.ImageRawSize != 4<<20 || a.BytesFetchedPeers != 1<<18 {
		t.Errorf("attempt %+v", a)
	}
}

// TestReportsSentAgain: an agent whose final report got no answer (the
// appliance that took it died) sends it again, with its spent token, to
// another appliance of the fleet: the same report gets the same answer
// and records nothing; another report is refused (issue 18).
func TestReportsSentAgain(t *testing.T) {
	wrong := strings.Repeat("ab", 32)
	failed := agentapi.Failed{Phase: agentapi.PhaseImage, Error: "EIO"}
	for _, tt := range []struct {
		name         string
		first, again any // agentapi.Done (with the plan's digest if empty) or agentapi.Failed
		code         int
		state        registry.State
	}{
		{"done", agentapi.Done{}, agentapi.Done{}, http.StatusOK, registry.StateInstalled},
		{"done with another digest", agentapi.Done{SHA256: wrong}, agentapi.Done{SHA256: wrong}, http.StatusConflict, registry.StatePending},
		{"failed", failed, failed, http.StatusOK, registry.StatePending},
		{"done, then another digest", agentapi.Done{}, agentapi.Done{SHA256: wrong}, http.StatusUnauthorized, ""},
		{"failed, then another error", failed, agentapi.Failed{Phase: agentapi.PhaseImage, Error: "ENOSPC"}, http.StatusUnauthorized, ""},
		{"failed, then done", failed, agentapi.Done{}, http.StatusUnauthorized, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			_, tok := e.boot(macN01, "efi")
			code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
			e.must(http.StatusOK, code, body)
			var p agentapi.PlanResponse
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatal(err)
			}
			e.writing(macN01, tok, 4<<30)
			send := func(rep any) (int, string) {
				if d, ok := rep.(agentapi.Done); ok {
					if d.SHA256 == "" {
						d.SHA256 = p.Plan.Image.SHA256
					}
					d.Bytes = 4 << 30
					return e.agent(http.MethodPost, "/api/agent/done", macN01, tok, d)
				}
				return e.agent(http.MethodPost, "/api/agent/failed", macN01, tok, rep)
			}
			firstCode, first := send(tt.first)
			if firstCode != http.StatusOK && firstCode != http.StatusConflict {
				t.Fatalf("first report: %d %s", firstCode, first)
			}
			hist := e.history(macN01)
			e.clock.Add(time.Minute)

			code, body = send(tt.again)
			if code != tt.code {
				t.Fatalf("sent again: %d %s, want %d", code, body, tt.code)
			}
			if tt.state != "" {
				var r agentapi.Result
				if err := json.Unmarshal([]byte(body), &r); err != nil || r.State != string(tt.state) || r.Attempt != 1 {
					t.Errorf("sent again: answered %s, want state %s of attempt 1", body, tt.state)
				}
				if body != first {
					t.Errorf("sent again: answered %s, first %s", body, first)
				}
			}
			if diff := cmp.Diff(hist, e.history(macN01)); diff != "" {
				t.Errorf("the report sent again changed the history (-before +after):\n%s", diff)
			}
			if v := mustJSON(t, e.host(macN01)); strings.Contains(v, "token") {
				t.Errorf("host view shows a token digest: %s", v)
			}
		})
	}
}

// TestLogSentAgain: a log batch the agent sends again after no answer
// (agentapi.Log.Again) is stored once when the log already ends with it.
func TestLogSentAgain(t *testing.T) {
	e := newEnv(t, nil)
	_, tok := e.boot(macN01, "efi")
	for _, l := range []agentapi.Log{
		{Lines: []string{"a", "b"}},
		{Lines: []string{"a", "b"}, Again: true}, // stored already: skipped
		{Lines: []string{"c"}, Again: true},      // not stored yet: stored
	} {
		code, body := e.agent(http.MethodPost, "/api/agent/log", macN01, tok, l)
		e.must(http.StatusNoContent, code, body)
	}
	code, body := e.agent(http.MethodGet, "/api/agent/plan", macN01, tok, nil)
	e.must(http.StatusOK, code, body)
	var hist []registry.Attempt
	if code := e.admin(http.MethodGet, "/api/hosts/"+macN01+"/history?log=1", nil, &hist); code != http.StatusOK {
		t.Fatalf("history: %d", code)
	}
	if len(hist) != 1 {
		t.Fatalf("history: %+v, want the running attempt", hist)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, hist[0].Log); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}
