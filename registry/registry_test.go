package registry_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/registry"
)

var (
	hwA = net.HardwareAddr{0x52, 0x54, 0, 0, 1, 1}
	hwB = net.HardwareAddr{0x52, 0x54, 0, 0, 1, 2}
)

const digest = "3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e3b1c2f0e"

// newRegistry is a Registry on a Memory store with a clock the test moves.
func newRegistry(t *testing.T) (*registry.Registry, *time.Time, *[]string) {
	t.Helper()
	clock := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var events []string
	r := &registry.Registry{
		Store:  registry.NewMemory(),
		Now:    func() time.Time { return clock },
		Notify: func(c registry.Change) { events = append(events, c.Event+" "+string(c.Host.State)) },
	}
	return r, &clock, &events
}

func TestRegistryInstallFlow(t *testing.T) {
	r, clock, events := newRegistry(t)
	d, err := r.Boot(ctx, hwA, "r1-n01", true, false)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != registry.BootInstall || len(d.Token) != 64 || d.Attempt != 1 {
		t.Fatalf("first boot = %+v, want an installer with a 64-character token for attempt 1", d)
	}
	// Another machine cannot use the token.
	if _, err := r.Authenticate(ctx, hwB, d.Token); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("token of %s accepted for %s: %v", hwA, hwB, err)
	}
	id, seq, err := r.AppendLog(ctx, hwA, d.Token, []string{"network up"}, false)
	if err != nil || id != 1 || seq != 1 {
		t.Fatalf("AppendLog before the plan = %d, %d, %v; want attempt 1, batch 1", id, seq, err)
	}
	*clock = clock.Add(time.Minute)
	a, err := r.Start(ctx, hwA, d.Token, registry.Install{Version: registry.Version{Name: "demo-1.1", Number: 11}, ImageSHA256: digest})
	if err != nil || a.ID != 1 || a.Number != 1 {
		t.Fatalf("Start = %+v, %v", a, err)
	}
	if _, _, err := r.AppendLog(ctx, hwA, d.Token, []string{"writing"}, false); err != nil {
		t.Fatal(err)
	}
	// Success before the agent was seen writing is refused, and changes
	// nothing: the attempt goes on.
	if _, err := r.Done(ctx, hwA, d.Token, registry.Report{SHA256: digest, Bytes: 1 << 20}); !errors.Is(err, registry.ErrReport) {
		t.Fatalf("Done before any image progress: %v, want ErrReport", err)
	}
	if err := r.Writing(ctx, hwA, d.Token); err != nil {
		t.Fatal(err)
	}
	*clock = clock.Add(time.Minute)
	h, err := r.Done(ctx, hwA, d.Token, registry.Report{SHA256: digest, Bytes: 1 << 20})
	if err != nil || h.State != registry.StateInstalled || h.Version.Number != 11 {
		t.Fatalf("Done = %+v, %v", h, err)
	}
	// The token dies with the attempt: only the same done sent again, its
	// answer lost, gets the host as it is, for ten minutes.
	if err := r.Writing(ctx, hwA, d.Token); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("a report after done: err = %v, want ErrUnauthorized", err)
	}
	if again, err := r.Done(ctx, hwA, d.Token, registry.Report{SHA256: digest, Bytes: 1 << 20}); err != nil || again.State != registry.StateInstalled || again.Attempt != h.Attempt {
		t.Errorf("done sent again: %+v, %v; want the installed host", again, err)
	}
	if _, err := r.Done(ctx, hwA, strings.Repeat("ab", 32), registry.Report{SHA256: digest}); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("done with another token: err = %v, want ErrUnauthorized", err)
	}
	*clock = clock.Add(10 * time.Minute)
	if _, err := r.Done(ctx, hwA, d.Token, registry.Report{SHA256: digest}); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("done sent again after ten minutes: err = %v, want ErrUnauthorized", err)
	}
	log, err := r.Store.Log(ctx, hwA.String(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"network up", "writing"}, log.Lines); diff != "" {
		t.Errorf("log of attempt 1 (-want +got):\n%s", diff)
	}
	hist, err := r.Store.History(ctx, hwA.String())
	if err != nil || len(hist) != 1 || hist[0].Result != registry.ResultSuccess || hist[0].DurationMS != time.Minute.Milliseconds() {
		t.Errorf("history = %+v, %v; want one successful attempt of one minute", hist, err)
	}
	d, err = r.Boot(ctx, hwA, "r1-n01", true, false)
	if err != nil || d.Kind != registry.BootLocal || d.Token != "" {
		t.Errorf("boot after the install = %+v, %v; want local without a token", d, err)
	}
	want := []string{"boot pending", "start installing", "done installed", "boot installed"}
	if diff := cmp.Diff(want, *events); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}

func TestRegistryUnknownLeavesNoRecord(t *testing.T) {
	r, _, events := newRegistry(t)
	d, err := r.Boot(ctx, hwB, "", false, false)
	if err != nil || d.Kind != registry.BootUnknown || d.Host.MAC != "" {
		t.Fatalf("Boot of an unknown machine = %+v, %v", d, err)
	}
	if _, err := r.Store.Host(ctx, hwB.String()); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown machine got a record: %v", err)
	}
	if len(*events) != 0 {
		t.Errorf("notifications for an unknown machine: %v", *events)
	}
}

func TestRegistryMaxAttempts(t *testing.T) {
	r, _, _ := newRegistry(t)
	r.MaxAttempts = 2
	for n := 1; n <= 2; n++ {
		d, err := r.Boot(ctx, hwA, "r1-n01", true, false)
		if err != nil || d.Kind != registry.BootInstall || d.Attempt != n {
			t.Fatalf("boot %d = %+v, %v", n, d, err)
		}
		if _, err := r.Fail(ctx, hwA, d.Token, registry.Report{Phase: "disk", Error: "no disk"}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := r.Boot(ctx, hwA, "r1-n01", true, false)
	if err != nil || d.Kind != registry.BootFailed || d.Message == "" {
		t.Fatalf("boot after 2 failures = %+v, %v; want failed with a message", d, err)
	}
	h, err := r.Reinstall(ctx, hwA, registry.ReinstallRequest{Reason: "disk replaced", By: "test"})
	if err != nil || h.State != registry.StatePending || h.Attempt != 0 || h.Reinstall.Reason != "disk replaced" {
		t.Fatalf("Reinstall = %+v, %v", h, err)
	}
	if d, _ := r.Boot(ctx, hwA, "r1-n01", true, false); d.Kind != registry.BootInstall || d.Attempt != 1 {
		t.Errorf("boot after reinstall = %+v, want attempt 1", d)
	}
}

func TestRegistryDigestMismatch(t *testing.T) {
	r, _, _ := newRegistry(t)
	d, _ := r.Boot(ctx, hwA, "r1-n01", true, false)
	if _, err := r.Start(ctx, hwA, d.Token, registry.Install{ImageSHA256: digest}); err != nil {
		t.Fatal(err)
	}
	if err := r.Writing(ctx, hwA, d.Token); err != nil {
		t.Fatal(err)
	}
	h, err := r.Done(ctx, hwA, d.Token, registry.Report{SHA256: "00"})
	if !errors.Is(err, registry.ErrDigest) || h.State != registry.StatePending {
		t.Errorf("Done with another digest = %s, %v; want pending, ErrDigest", h.State, err)
	}
}
