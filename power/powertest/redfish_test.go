package powertest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/power/powertest"
)

// TestRedfishBMCAuth: the service root is anonymous, everything else needs
// a session token or Basic auth, and a session ends with its DELETE.
func TestRedfishBMCAuth(t *testing.T) {
	m := powertest.NewFakeMachine(false)
	b := &powertest.RedfishBMC{User: "admin", Password: "pw", Systems: map[string]powertest.Machine{"s1": m}}
	srv := httptest.NewServer(b)
	defer srv.Close()
	do := func(method, path, body string, set func(*http.Request)) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }

	if r := do("GET", "/redfish/v1/", "", nil); r.StatusCode != 200 {
		t.Errorf("anonymous service root: %d", r.StatusCode)
	}
	if r := do("GET", "/redfish/v1/Systems", "", nil); r.StatusCode != 401 {
		t.Errorf("anonymous Systems: %d, want 401", r.StatusCode)
	}
	if r := do("GET", "/redfish/v1/Systems", "", basic("admin", "bad")); r.StatusCode != 401 {
		t.Errorf("wrong Basic: %d, want 401", r.StatusCode)
	}
	if r := do("GET", "/redfish/v1/Systems/s1", "", basic("admin", "pw")); r.StatusCode != 200 {
		t.Errorf("Basic: %d", r.StatusCode)
	}
	if r := do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"bad"}`, nil); r.StatusCode != 401 {
		t.Errorf("session with a wrong password: %d, want 401", r.StatusCode)
	}
	r := do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"pw"}`, nil)
	token, loc := r.Header.Get("X-Auth-Token"), r.Header.Get("Location")
	if r.StatusCode != 201 || token == "" || loc == "" || b.Sessions() != 1 {
		t.Fatalf("session: %d token %q location %q sessions %d", r.StatusCode, token, loc, b.Sessions())
	}
	tok := func(r *http.Request) { r.Header.Set("X-Auth-Token", token) }
	if r := do("PATCH", "/redfish/v1/Systems/s1", `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`, tok); r.StatusCode != 204 || !b.NetBootPending("s1") {
		t.Errorf("PATCH Boot: %d, pending %v", r.StatusCode, b.NetBootPending("s1"))
	}
	if r := do("POST", "/redfish/v1/Systems/s1/Actions/ComputerSystem.Reset", `{"ResetType":"Nmi"}`, tok); r.StatusCode != 400 {
		t.Errorf("Reset Nmi: %d, want 400", r.StatusCode)
	}
	if r := do("POST", "/redfish/v1/Systems/s1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, tok); r.StatusCode != 204 {
		t.Errorf("Reset On: %d", r.StatusCode)
	}
	if calls := m.Calls(); len(calls) != 1 || calls[0].Op != "on" || !calls[0].NetBoot {
		t.Errorf("machine calls %+v, want one network-boot power on", calls)
	}
	if log := b.Log(); len(log) != 1 || log[0].System != "s1" || log[0].Action != "On" || !log[0].NetBoot {
		t.Errorf("log %+v", log)
	}
	if r := do("DELETE", loc, "", tok); r.StatusCode != 204 || b.Sessions() != 0 {
		t.Errorf("DELETE session: %d, %d sessions left", r.StatusCode, b.Sessions())
	}
	if r := do("GET", "/redfish/v1/Systems", "", tok); r.StatusCode != 401 {
		t.Errorf("token after logout: %d, want 401", r.StatusCode)
	}
}
