//go:build e2e

package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/registry"
)

// checkStranger is issue 13's defects 1 and 2 against the real daemon and
// the real neighbour table, while the machine mac is installing: the lab's
// client namespace (another link-layer address on the same segment) asks
// for the machine's script three times — once enough to end the attempt,
// three to fail the host — and forges a success report. It gets a script
// that boots nothing and a 403, and the machine's install goes on
// untouched; the caller then checks that it ends in one successful
// attempt.
func checkStranger(t *testing.T, ctx context.Context, tb *testbed, admin adminAPI, vm *lab.VM, mac string) {
	t.Helper()
	if _, err := vm.WaitFor(ctx, `msg="plan received"`, installTimeout); err != nil {
		t.Fatalf("%v\nlast console lines:\n%s", err, vm.Tail(30))
	}
	var before api.HostView
	admin.get(t, "/api/hosts/"+mac, &before)
	if before.State != registry.StateInstalling {
		t.Fatalf("host %s is %s once its agent has its plan, want installing", mac, before.State)
	}
	hc := tb.net.HTTPClient(tb.net.Cli)
	base := "http://" + lab.ServerIP + ":" + httpPort
	// The agent API is on HTTPS: a forged report sent to the plain port
	// would be refused there whoever sent it, which proves nothing.
	shc, err := tb.net.HTTPSClient(tb.net.Cli, tb.data)
	if err != nil {
		t.Fatal(err)
	}
	apiBase := "https://" + lab.ServerIP + ":" + httpsPort
	do := func(req *http.Request) (int, string) {
		t.Helper()
		c := hc
		if req.URL.Scheme == "https" {
			c = shc
		}
		resp, err := c.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	sent := time.Now()
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, base+"/ipxe?mac="+strings.ReplaceAll(mac, ":", "-")+"&arch=x86_64&platform=pcbios", nil)
		code, body := do(req)
		if code != http.StatusOK || !strings.Contains(body, "did not come from the link-layer address") || strings.Contains(body, "rackboot.token") {
			t.Errorf("a stranger's script request for %s: %d\n%s", mac, code, body)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, apiBase+agentapi.PathDone, strings.NewReader(`{"sha256":"`+strings.Repeat("0", 64)+`","bytes":1}`))
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 64))
	req.Header.Set(agentapi.MACHeader, mac)
	if code, body := do(req); code != http.StatusForbidden {
		t.Errorf("a stranger's done report for %s: %d %s, want 403", mac, code, body)
	}
	var after api.HostView
	admin.get(t, "/api/hosts/"+mac, &after)
	// Its own agent may have finished meanwhile: installed is fine, a
	// pending or failed host (an attempt ended) is the defect.
	if (after.State != registry.StateInstalling && after.State != registry.StateInstalled) || after.Attempt != before.Attempt {
		t.Errorf("after a stranger's requests host %s is %s at attempt %d (%s), want installing (or installed by its agent) at attempt %d",
			mac, after.State, after.Attempt, after.Reason, before.Attempt)
	}
	refused := 0
	for _, e := range since(tb.entries(t), sent) {
		if e.Str("outcome") == ipxe.OutcomeUnverified && e.Str("mac") == mac && strings.Contains(e.Str("err"), "came from link-layer address") {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("rackboot logged %d refused script requests for %s naming the stranger's link-layer address, want 3:\n%s", refused, mac, readTail(tb.serverLog, 20))
	}
	t.Logf("a stranger on the segment asked for %s's script 3 times and forged done: refused, the install went on", mac)
}
