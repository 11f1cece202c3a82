package power_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/power"
)

// TestIPMISim runs the controller against OpenIPMI's ipmi_sim, the "real
// BMC" of the e2e lab, in chassis_control mode with a shell program for a
// chassis (docs/bmc-groundwork.md §1.2). Skipped where ipmi_sim is not
// installed (Debian: openipmi).
func TestIPMISim(t *testing.T) {
	sim, err := exec.LookPath("ipmi_sim")
	if err != nil {
		t.Skip("ipmi_sim not installed (apt-get install openipmi)")
	}
	dir := t.TempDir()
	chassis, err := filepath.Abs("testdata/chassis.sh")
	if err != nil {
		t.Fatal(err)
	}
	// A free UDP port: bound and released (ipmi_sim takes it next).
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	conf := fmt.Sprintf(`name "rb-test"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s %s"
  user 2 true "admin" "s3cret-pw" admin 10 md5
`, port, chassis, dir)
	emu := "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"
	for name, body := range map[string]string{"lan.conf": conf, "sim.emu": emu} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sim, "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "sim.emu"), "-s", filepath.Join(dir, "state"), "-n")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	good := power.Target{Protocol: "ipmi", Address: addr, Username: "admin", Password: "s3cret-pw"}
	cfg := power.Config{Timeout: 5 * time.Second, PollInterval: 100 * time.Millisecond}
	ctx := context.Background()
	c := newController(t, good, cfg)
	var state power.State
	for deadline := time.Now().Add(3 * time.Second); ; {
		if state, err = c.Status(ctx); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || state != power.StateOff {
		t.Fatalf("status: %s, %v; want off", state, err)
	}

	// Network boot + on, cycle (ipmi_sim powers down, then up on its 1 s
	// tick), off.
	for _, step := range []struct {
		a       power.Action
		netboot bool
		want    power.State
	}{{power.ActionOn, true, power.StateOn}, {power.ActionCycle, false, power.StateOn}, {power.ActionOff, false, power.StateOff}} {
		start := time.Now()
		got, err := power.Do(ctx, c, step.a, step.netboot, cfg)
		if err != nil || got != step.want {
			t.Fatalf("%s: %s, %v; want %s", step.a, got, err, step.want)
		}
		t.Logf("%s (netboot %v): %s in %s", step.a, step.netboot, got, time.Since(start).Round(time.Millisecond))
	}
	log, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	want := "boot pxe\npower 1\npower 0\npower 1\npower 0\n"
	if string(log) != want {
		t.Errorf("chassis program saw:\n%s\nwant:\n%s", log, want)
	}

	for _, tc := range []struct {
		name string
		tg   power.Target
	}{
		{"wrong password", power.Target{Protocol: "ipmi", Address: addr, Username: "admin", Password: "wr0ng"}},
		{"wrong user", power.Target{Protocol: "ipmi", Address: addr, Username: "root", Password: "s3cret-pw"}},
	} {
		_, err := newController(t, tc.tg, cfg).Status(ctx)
		t.Logf("%s: %v", tc.name, err)
		if power.KindOf(err) != power.KindAuth || strings.Contains(err.Error(), tc.tg.Password) {
			t.Errorf("%s: %v, want an auth error without the password", tc.name, err)
		}
	}
}
