//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/power/powertest"
	"github.com/rackboot/rackboot/registry"
)

// haveRedfishDouble: power/powertest's RedfishBMC is built in.
const haveRedfishDouble = true

// An AgentMachine is a machine a BMC double drives.
var _ powertest.Machine = (*lab.AgentMachine)(nil)

// newRedfishDouble is a Redfish BMC double (powertest.RedfishBMC) with
// the machines as its systems, by system id.
func newRedfishDouble(user, password string, systems map[string]*lab.AgentMachine) redfishDouble {
	ms := map[string]powertest.Machine{}
	for id, m := range systems {
		ms[id] = m
	}
	b := &powertest.RedfishBMC{User: user, Password: password, Systems: ms}
	return redfishDouble{
		Handler: b,
		log:     func() string { return fmt.Sprintf("%+v", b.Log()) },
		actions: func() []bmcAction {
			var out []bmcAction
			for _, r := range b.Log() {
				out = append(out, bmcAction{System: r.System, Action: r.Action, NetBoot: r.NetBoot, At: r.Time})
			}
			return out
		},
	}
}

// TestAgentMachineRedfish drives AgentMachines through the Redfish BMC
// double with plain Redfish requests, no rackboot power code: a one-time
// network boot (PATCH Boot {Pxe, Once}) and a PowerCycle make a pending
// host install through its agent and boot its disk; the next PowerCycle,
// the network boot used up, boots the disk without asking rackboot;
// ForceOff powers it off; wrong credentials are refused.
func TestAgentMachineRedfish(t *testing.T) {
	ctx := testContext(t)
	mac := agentMAC(4, 1)
	hosts := []string{`mac: "` + mac.String() + `", hostname: lab-rf1`}
	for i := range redfishByHand {
		hosts = append(hosts, fmt.Sprintf("mac: %q, hostname: lab-s%d", agentMAC(5, byte(i)).String(), i))
	}
	l := startAgentLab(t, ctx, agentLabConfig{versions: []string{"lab-1"}, hosts: hosts})
	m := l.machine(t, "rf1", mac)
	systems := map[string]*lab.AgentMachine{"rf1": m}
	var staggered []*lab.AgentMachine
	for i := range redfishByHand {
		s := l.machine(t, fmt.Sprintf("s%d", i), agentMAC(5, byte(i)))
		systems[s.Name()] = s
		staggered = append(staggered, s)
	}
	if err := m.PowerOn(false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(waitCtx(t, ctx, 10*time.Second), time.Time{}, lab.EventBootDisk); err != nil {
		t.Fatal(err)
	}
	d := newRedfishDouble("admin", "secret", systems)
	srv := httptest.NewServer(d)
	defer srv.Close()
	do := func(method, path, body, user string) int {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, "secret")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	const sys = "/redfish/v1/Systems/rf1"
	if got := do(http.MethodPost, sys+"/Actions/ComputerSystem.Reset", `{"ResetType":"PowerCycle"}`, "intruder"); got != http.StatusUnauthorized {
		t.Errorf("a reset with wrong credentials: %d, want 401", got)
	}

	t0 := time.Now()
	if got := do(http.MethodPatch, sys, `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`, "admin"); got/100 != 2 {
		t.Fatalf("PATCH Boot: %d", got)
	}
	if got := do(http.MethodPost, sys+"/Actions/ComputerSystem.Reset", `{"ResetType":"PowerCycle"}`, "admin"); got/100 != 2 {
		t.Fatalf("PowerCycle: %d", got)
	}
	waitBoot(t, ctx, m, t0)
	wantKinds(t, m.Events(), t0, lab.EventReset, lab.EventScript, lab.EventAgentStart, lab.EventAgentDone, lab.EventBootDisk)
	if hv := l.hostView(t, mac.String()); hv.State != registry.StateInstalled {
		t.Errorf("registry: %s (%s), want installed", hv.State, hv.Reason)
	}

	t1 := time.Now()
	if got := do(http.MethodPost, sys+"/Actions/ComputerSystem.Reset", `{"ResetType":"PowerCycle"}`, "admin"); got/100 != 2 {
		t.Fatalf("PowerCycle: %d", got)
	}
	if _, err := m.WaitFor(waitCtx(t, ctx, 10*time.Second), t1, lab.EventBootDisk); err != nil {
		t.Fatal(err)
	}
	wantKinds(t, m.Events(), t1, lab.EventReset, lab.EventBootDisk)

	if got := do(http.MethodPost, sys+"/Actions/ComputerSystem.Reset", `{"ResetType":"ForceOff"}`, "admin"); got/100 != 2 {
		t.Fatalf("ForceOff: %d", got)
	}
	if m.IsOn() {
		t.Error("on after ForceOff")
	}
	acts := d.actions()
	if len(acts) != 3 || !acts[0].NetBoot || acts[1].NetBoot || acts[2].Action != "ForceOff" {
		t.Errorf("the double's log: %+v; want PowerCycle with network boot, PowerCycle, ForceOff", acts)
	}

	// What TestPowerStagger asks of rackboot, done by hand: a network
	// boot and a power cycle of each machine, fleetStagger apart. The
	// fleet tests' checks of the double's log and of the machines'
	// events pass, and every machine installs.
	t2 := time.Now()
	for i, s := range staggered {
		if i > 0 {
			time.Sleep(fleetStagger)
		}
		path := "/redfish/v1/Systems/" + s.Name()
		if got := do(http.MethodPatch, path, `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`, "admin"); got/100 != 2 {
			t.Fatalf("PATCH Boot of %s: %d", s.Name(), got)
		}
		if got := do(http.MethodPost, path+"/Actions/ComputerSystem.Reset", `{"ResetType":"PowerCycle"}`, "admin"); got/100 != 2 {
			t.Fatalf("PowerCycle of %s: %d", s.Name(), got)
		}
	}
	checkLogStagger(t, d, t2, true, len(staggered))
	first, last := checkStagger(t, staggered, t2, true)
	if spread := last.Sub(first); spread < time.Duration(len(staggered)-1)*fleetGap {
		t.Errorf("first to last power action: %v", spread)
	}
	for _, s := range staggered {
		waitBoot(t, ctx, s, t2)
		if !containsInOrder(eventKinds(s.Events(), t2), lab.EventScript, lab.EventAgentStart, lab.EventAgentDone, lab.EventBootDisk) {
			t.Errorf("%s: %v", s.Name(), eventKinds(s.Events(), t2))
		}
		if !l.diskHolds(t, s, "lab-1") {
			t.Errorf("%s: the disk does not hold lab-1's image", s.Name())
		}
	}
}

// redfishByHand is how many machines TestAgentMachineRedfish cycles one
// by one.
const redfishByHand = 4
