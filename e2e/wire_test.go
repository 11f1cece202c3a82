//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/e2e/lab"
)

// wireWatch captures the lab bridge, the boot segment as the appliance
// sees it, for the admin token and the plan's secrets, which must never
// cross in clear, and for what must: the plain iPXE script with its
// install token, and a canary the test itself sends over plain HTTP, which
// proves the capture sees a client's requests (docs/DESIGN.md, section 7,
// "TLS").
type wireWatch struct {
	tb      *testbed
	capture *lab.Capture
	secrets map[string]string // what must not be seen, by name
	canary  string
}

const (
	ipxeScriptMark = "#!ipxe"
	installTokenOn = "rackboot.token="
)

func watchWire(t *testing.T, tb *testbed, secrets map[string]string) *wireWatch {
	t.Helper()
	b := make([]byte, 16)
	rand.Read(b)
	w := &wireWatch{tb: tb, secrets: secrets, canary: "rackboot-wire-canary-" + hex.EncodeToString(b)}
	needles := []string{w.canary, ipxeScriptMark, installTokenOn}
	for _, s := range secrets {
		needles = append(needles, s)
	}
	c, err := tb.net.Capture(tb.net.Srv, lab.Bridge, needles...)
	if err != nil {
		t.Fatal(err)
	}
	w.capture = c
	t.Cleanup(func() { c.Close() }) // a second Close after check is harmless
	return w
}

// check sends the canary and a plain request for the admin API (without a
// token: it is refused and names the HTTPS URL), stops the capture and
// asserts what it saw.
func (w *wireWatch) check(t *testing.T) {
	t.Helper()
	hc := w.tb.net.HTTPClient(w.tb.net.Cli)
	get := func(path string, header map[string]string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+lab.ServerIP+":"+httpPort+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz", map[string]string{"X-Canary": w.canary}); code != http.StatusOK {
		t.Errorf("plain /healthz: %d", code)
	}
	code, body := get("/api/hosts", nil)
	if want := "https://" + lab.ServerIP + ":" + httpsPort; code != http.StatusForbidden || !strings.Contains(body, want) {
		t.Errorf("plain /api/hosts: %d %s; want 403 naming %s", code, body, want)
	}
	st, err := w.capture.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("capture of %s: %d frames, %d bytes, %d dropped; seen: canary %d, iPXE scripts %d, install tokens %d",
		lab.Bridge, st.Frames, st.Bytes, st.Drops, st.Seen[w.canary], st.Seen[ipxeScriptMark], st.Seen[installTokenOn])
	if st.Drops > 0 {
		t.Errorf("the capture dropped %d frames: what it did not see proves nothing", st.Drops)
	}
	if st.Seen[w.canary] == 0 {
		t.Errorf("the capture missed the canary sent over plain HTTP: it proves nothing")
	}
	if st.Seen[ipxeScriptMark] == 0 || st.Seen[installTokenOn] == 0 {
		t.Errorf("the capture saw no plain iPXE script with an install token (scripts %d, tokens %d)", st.Seen[ipxeScriptMark], st.Seen[installTokenOn])
	}
	for name, s := range w.secrets {
		if n := st.Seen[s]; n > 0 {
			t.Errorf("the %s crossed the wire in clear, in %d frames", name, n)
		}
	}
}
