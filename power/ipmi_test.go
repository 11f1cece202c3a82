package power_test

import (
	"context"
	"testing"

	"github.com/bougou/go-ipmi/pkg/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rackboot/rackboot/power"
	"github.com/rackboot/rackboot/power/powertest"
)

// TestIPMISemantics runs Do's actions against go-ipmi's reference BMC in
// the process (RMCP+, cipher suite 3) and checks what the machine saw.
func TestIPMISemantics(t *testing.T) {
	tests := []struct {
		name      string
		on        bool
		action    power.Action
		netboot   bool
		wantState power.State
		wantCalls []powertest.Call
		wantLog   []string
	}{
		{name: "status on", on: true, action: power.ActionStatus, wantState: power.StateOn},
		{name: "status off", action: power.ActionStatus, wantState: power.StateOff},
		{name: "on when off", action: power.ActionOn, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "on"}}, wantLog: []string{"power up"}},
		{name: "on when on is a no-op", on: true, action: power.ActionOn, wantState: power.StateOn},
		{name: "off when on", on: true, action: power.ActionOff, wantState: power.StateOff, wantCalls: []powertest.Call{{Op: "off"}}, wantLog: []string{"power down"}},
		{name: "off when off is a no-op", action: power.ActionOff, wantState: power.StateOff},
		{name: "cycle when on", on: true, action: power.ActionCycle, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "reset"}}, wantLog: []string{"power cycle"}},
		{name: "cycle when off powers on", action: power.ActionCycle, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "on"}}, wantLog: []string{"power up"}},
		{name: "netboot and cycle when on", on: true, action: power.ActionCycle, netboot: true, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "reset", NetBoot: true}}, wantLog: []string{"power cycle"}},
		{name: "netboot and on when off", action: power.ActionOn, netboot: true, wantState: power.StateOn, wantCalls: []powertest.Call{{Op: "on", NetBoot: true}}, wantLog: []string{"power up"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := powertest.NewFakeMachine(tt.on)
			b := &powertest.IPMIBMC{Name: "n1", User: user, Password: password, Machine: m}
			addr := powertest.ServeIPMI(t, b)
			c := newController(t, power.Target{Protocol: "ipmi", Address: addr, Username: user, Password: password}, fast)
			state, err := power.Do(context.Background(), c, tt.action, tt.netboot, fast)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if state != tt.wantState {
				t.Errorf("state %s, want %s", state, tt.wantState)
			}
			if diff := cmp.Diff(tt.wantCalls, ops(m.Calls()), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("machine calls (-want +got):\n%s", diff)
			}
			var log []string
			for _, r := range b.Log() {
				log = append(log, r.Action)
			}
			if diff := cmp.Diff(tt.wantLog, log, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("BMC log (-want +got):\n%s", diff)
			}
			if b.NetBootPending() {
				t.Error("a network boot is still pending after the power action")
			}
			if tt.netboot {
				f := b.BootFlags()
				want := types.BootOptionParam_BootFlags{Persist: false, BIOSBootType: types.BIOSBootTypeLegacy, BootDeviceSelector: types.BootDeviceSelectorForcePXE}
				if f == nil || f.Persist != want.Persist || f.BIOSBootType != want.BIOSBootType || f.BootDeviceSelector != want.BootDeviceSelector {
					t.Errorf("boot flags %+v, want once, legacy, force PXE", f)
				}
			}
		})
	}
}

// TestIPMINetBootOnceFlags: NetBootOnce alone leaves a valid, next-boot-only
// PXE request pending.
func TestIPMINetBootOnceFlags(t *testing.T) {
	b := &powertest.IPMIBMC{User: user, Password: password, Machine: powertest.NewFakeMachine(false)}
	addr := powertest.ServeIPMI(t, b)
	c := newController(t, power.Target{Protocol: "ipmi", Address: addr, Username: user, Password: password}, fast)
	if err := c.NetBootOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := b.BootFlags()
	if f == nil || !f.BootFlagsValid || f.Persist || f.BootDeviceSelector != types.BootDeviceSelectorForcePXE {
		t.Errorf("boot flags %+v, want valid, once, force PXE", f)
	}
	if !b.NetBootPending() {
		t.Error("no network boot pending")
	}
}
