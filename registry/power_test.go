package registry_test

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/rackboot/rackboot/registry"
)

// TestRecordPower: power actions are kept in the host's record, the
// newest last, bounded, and a never-seen host of the profiles gets a
// pending record.
func TestRecordPower(t *testing.T) {
	r := &registry.Registry{Store: registry.NewMemory()}
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}
	var changes []string
	r.Notify = func(c registry.Change) { changes = append(changes, c.Event) }
	for i := range registry.MaxPowerActions + 3 {
		if _, err := r.RecordPower(context.Background(), mac, "n9", registry.PowerAction{Action: "cycle", Result: registry.PowerOK, By: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := r.Store.Host(context.Background(), mac.String())
	if err != nil {
		t.Fatal(err)
	}
	if h.State != registry.StatePending || h.Hostname != "n9" {
		t.Errorf("record %s %q, want pending n9", h.State, h.Hostname)
	}
	if len(h.Power) != registry.MaxPowerActions || h.Power[0].By != "3" || h.Power[len(h.Power)-1].By != fmt.Sprint(registry.MaxPowerActions+2) {
		t.Errorf("kept %d actions from %q to %q", len(h.Power), h.Power[0].By, h.Power[len(h.Power)-1].By)
	}
	if len(changes) != registry.MaxPowerActions+3 || changes[0] != "power" {
		t.Errorf("changes %v", changes)
	}
}
