//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/power/powertest"
	"github.com/rackboot/rackboot/registry"
)

// TestBMC is issue 17's acceptance: rackboot drives machines' power
// through their BMCs, and a one-time network boot through the BMC
// installs a machine that otherwise boots its disk.
//
//   - ipmi: a BIOS machine behind ipmi_sim (lab.BMCVM, lab.StartIPMISim),
//     off at start. `rackboot power status` says off. Negative control:
//     `rackboot power on` without --netboot boots the (blank) disk and
//     never tries the network (the NIC is not in the boot order: -boot
//     strict=on, no bootindex); rackboot serves it no script. `rackboot
//     power on --netboot`: SeaBIOS's "Booting from ROM..." before any
//     "Booting from Hard Disk...", the agent installs demo-1.0 and
//     reboots, and that reboot, in the same power-on, boots the disk
//     first and reaches the installed OS, which powers off; the registry
//     says installed. `rackboot reinstall --power-cycle` installs it
//     again the same way and exits 0 once installed.
//   - redfish: a machine behind powertest.RedfishBMC served in the
//     server namespace, beside three broken BMCs (wrong password, a closed
//     port, a server that accepts and never answers): one `rackboot power
//     on --netboot --json` over the four: the good one network-boots, the
//     three fail with kind auth, unreachable and timeout, each its own
//     error, and the command takes about one power timeout, not the sum;
//     then `power off`: QEMU gone, status off.
func TestBMC(t *testing.T) {
	requireLab(t)
	requireIPMI(t)
	ctx := testContext(t)
	work := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	arts, err := lab.BuildArtifacts(ctx, lab.ArtifactsConfig{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	img, err := osimage.Build(ctx, osimage.Config{Version: demoVersion, Kernel: arts.Kernel, ModulesDir: arts.ModulesDir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	initrd := buildAgentInitrd(t, ctx, work)
	creds := filepath.Join(work, "bmc-credentials")
	if err := os.MkdirAll(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, pw := range map[string]string{"bmc-r1": bmcPassword + "\n", "bmc-wrong": "not-" + bmcPassword + "\n"} {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tb := startTestbed(t, ctx, testbedConfig{
		fleet: bmcFleet(img.SHA256, bmcAddrs{}),
		files: map[string]string{demoVersion + ".img.zst": img.Path, "agent.cpio.gz": initrd},
		// A BMC that never answers costs one power timeout: 10 s rather
		// than the default 30 s.
		serve: []string{"--bmc-credentials", creds, "--power-timeout", "10s"},
	})
	logDaemonOnFailure(t, tb)
	cli := powerCLI{tb: tb, bin: buildRackboot(t, ctx)}
	n := tb.net

	// The machines and their BMCs, all in the server namespace, where
	// rackboot serve runs and reaches them on 127.0.0.1.
	ipmiVM := newBMCVM(t, ctx, tb, "bmc-ipmi", bmcIPMIMAC)
	sim, err := lab.StartIPMISim(ctx, n, ipmiVM, bmcUser, bmcPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	rfVM := newBMCVM(t, ctx, tb, "bmc-rf", bmcRFMAC)
	rf := &powertest.RedfishBMC{User: bmcUser, Password: bmcPassword, Systems: map[string]powertest.Machine{bmcSystem: rfVM}}
	addrs := bmcAddrs{
		ipmi:    sim.Addr,
		redfish: "http://" + serveIn(t, n, rf),
		closed:  "http://" + closedPort(t, n),
		hang:    "http://" + hangingServer(t, n),
	}
	writeProfiles(t, tb, bmcFleet(img.SHA256, addrs))
	t.Logf("BMCs: ipmi_sim %s, Redfish double %s, closed %s, hanging %s", addrs.ipmi, addrs.redfish, addrs.closed, addrs.hang)

	t.Run("ipmi", func(t *testing.T) { testBMCIPMI(t, ctx, tb, cli, ipmiVM, sim) })
	t.Run("redfish", func(t *testing.T) { testBMCRedfish(t, ctx, cli, rfVM, rf) })
}

func testBMCIPMI(t *testing.T, ctx context.Context, tb *testbed, cli powerCLI, vm *lab.BMCVM, sim *lab.IPMISim) {
	host := "bmc-ipmi-01"
	defer func() {
		t.Logf("console (%s), boots and the lab's lines:\n%s", vm.SerialLog(), consoleSummary(vm))
		if t.Failed() {
			t.Logf("chassis log:\n%s", readTail(sim.ChassisLog(), 40))
		}
	}()

	// Off at start.
	if r := cli.power(t, 0, "status", host).one(t); r.State != "off" || r.Error != "" {
		t.Fatalf("power status %s: %+v, want off", host, r)
	}

	// Negative control: a power-on without --netboot never tries the
	// network. The disk is blank: SeaBIOS finds nothing to boot.
	at, wall := vm.Now(), time.Now()
	if r := cli.power(t, 0, "on", host).one(t); r.State != "on" || r.NetBoot {
		t.Errorf("power on %s: %+v, want on, no netboot", host, r)
	}
	wantFirstBoot(t, ctx, vm, at, diskBoot)
	waitConsole(t, ctx, vm, `No bootable device|Boot failed`, at, firmwareTimeout)
	if l, ok := firstAfter(vm, romBoot, at); ok {
		t.Errorf("power on without --netboot tried the network: %s", l)
	}
	if got := scriptsSince(t, tb, bmcIPMIMAC, wall); len(got) != 0 {
		t.Errorf("rackboot served %q to a machine powered on without --netboot", got)
	}
	if r := cli.power(t, 0, "off", host).one(t); r.State != "off" || vm.IsOn() {
		t.Fatalf("power off %s: %+v, QEMU running %v", host, r, vm.IsOn())
	}

	// The install, through the BMC.
	at, wall = vm.Now(), time.Now()
	r := cli.power(t, 0, "on", "--netboot", host).one(t)
	if r.State != "on" || !r.NetBoot || r.Action == "" {
		t.Errorf("power on --netboot %s: %+v, want on, netboot", host, r)
	}
	installThroughBMC(t, ctx, tb, vm, at, wall, 1)
	if r := cli.power(t, 0, "status", host).one(t); r.State != "off" {
		t.Errorf("power status after the OS powered off: %+v, want off", r)
	}

	// A reinstall with a power cycle (the machine is off: cycle powers it
	// on); the command follows the install to its end.
	at, wall = vm.Now(), time.Now()
	res := make(chan cliResult, 1)
	go func() { res <- cli.run(installTimeout+osBootTimeout, "reinstall", "--power-cycle", host) }()
	installThroughBMC(t, ctx, tb, vm, at, wall, 2)
	select {
	case out := <-res:
		t.Logf("rackboot reinstall --power-cycle %s (%.1fs, exit %d):\n%s%s", host, out.took.Seconds(), out.exit, out.stdout, out.stderr)
		if out.exit != 0 {
			t.Errorf("reinstall --power-cycle: exit %d, want 0 (installed)", out.exit)
		}
	case <-time.After(2 * time.Minute):
		t.Errorf("rackboot reinstall --power-cycle still running 2 minutes after the install was done")
	}
	// Two successful attempts; the power actions through the BMC after
	// them in the text history and in the host's record.
	var attempts []registry.Attempt
	hist := cli.run(time.Minute, "history", host, "--json")
	if err := json.Unmarshal([]byte(hist.stdout), &attempts); err != nil {
		t.Errorf("rackboot history --json: exit %d, %v", hist.exit, err)
	}
	checkHistory(t, attempts, 2)
	text := cli.run(time.Minute, "history", host)
	t.Logf("rackboot history %s:\n%s", host, text.stdout)
	for _, want := range []string{"power actions through the BMC (ipmi " + sim.Addr, "on + netboot once"} {
		if !strings.Contains(text.stdout, want) {
			t.Errorf("rackboot history %s lacks %q", host, want)
		}
	}
	var view api.HostView
	tb.adminAPI(t).get(t, "/api/hosts/"+bmcIPMIMAC, &view)
	// The reinstall's power action is last: a cycle with a network boot,
	// which the daemon may carry out as an on (the machine was off).
	var actions []string
	for _, p := range view.Power {
		if p.Action == "status" {
			continue
		}
		a := p.Action + "/" + p.Result
		if p.NetBoot {
			a += "/netboot"
		}
		actions = append(actions, a)
	}
	got := strings.Join(actions, " ")
	if got != "on/ok off/ok on/ok/netboot cycle/ok/netboot" && got != "on/ok off/ok on/ok/netboot on/ok/netboot" {
		t.Errorf("GET /api/hosts/%s power records (status aside) %q, want on, off, on with netboot, cycle (or on) with netboot", bmcIPMIMAC, actions)
	}
}

func testBMCRedfish(t *testing.T, ctx context.Context, cli powerCLI, vm *lab.BMCVM, rf *powertest.RedfishBMC) {
	defer func() { t.Logf("console (%s):\n%s", vm.SerialLog(), consoleSummary(vm)) }()
	hosts := []string{"bmc-rf-01", "bmc-rf-auth", "bmc-rf-closed", "bmc-rf-hang"}
	at := vm.Now()
	// --stagger 0s: the appliance's default stagger (2 s between two
	// machines' actions, against inrush current) would add 6 s here;
	// TestPowerStagger tests it.
	out := cli.power(t, 1, append([]string{"on", "--netboot", "--stagger", "0s"}, hosts...)...)
	byHost := map[string]bmcPowerResult{}
	var slowest time.Duration
	var first, last time.Time
	for _, r := range out.Results {
		byHost[r.Hostname] = r
		slowest = max(slowest, r.Finished.Sub(r.Started))
		if first.IsZero() || r.Started.Before(first) {
			first = r.Started
		}
		last = later(last, r.Started)
	}
	if len(out.Results) != len(hosts) {
		t.Errorf("%d results, want %d", len(out.Results), len(hosts))
	}
	if last.Sub(first) > 2*time.Second {
		t.Errorf("the machines' actions started %v apart, want at once", last.Sub(first))
	}
	if r := byHost["bmc-rf-01"]; r.State != "on" || !r.NetBoot || r.Error != "" {
		t.Errorf("bmc-rf-01: %+v, want on with netboot", r)
	}
	errs := map[string]bool{}
	for host, kind := range map[string]string{"bmc-rf-auth": "auth", "bmc-rf-closed": "unreachable", "bmc-rf-hang": "timeout"} {
		r := byHost[host]
		if r.Kind != kind || r.Error == "" || errs[r.Error] {
			t.Errorf("%s: kind %q error %q, want kind %s and an error of its own", host, r.Kind, r.Error, kind)
		}
		if strings.Contains(r.Error, bmcPassword) {
			t.Errorf("%s: the error names the password: %q", host, r.Error)
		}
		errs[r.Error] = true
	}
	// Machines are driven at once: the slowest, the hanging BMC, bounds
	// the command (one power timeout), not the sum of the four.
	if out.took > slowest+3*time.Second {
		t.Errorf("power on took %v, its slowest machine %v: the machines waited for each other", out.took, slowest)
	}
	t.Logf("power on --netboot over %d BMCs: %.1fs, slowest machine %.1fs", len(hosts), out.took.Seconds(), slowest.Seconds())
	if !vm.IsOn() {
		t.Fatalf("bmc-rf-01 is not running")
	}
	wantFirstBoot(t, ctx, vm, at, romBoot)
	var onNetboot bool
	for _, rec := range rf.Log() {
		onNetboot = onNetboot || rec.System == bmcSystem && rec.Action == "On" && rec.NetBoot
	}
	if !onNetboot {
		t.Errorf("the Redfish double's log %+v has no On with a network boot", rf.Log())
	}
	if n := rf.Sessions(); n != 0 {
		t.Errorf("%d Redfish sessions left open", n)
	}

	// The same four with the appliance's default stagger (2 s): the
	// hanging BMC, last in MAC order, starts 6 s in and takes its 10 s
	// timeout, so the answer comes after 16 s, later than the CLI's
	// 15 s header timeout of ordinary requests, which a power request
	// must not have (it cut this one short once).
	st := cli.power(t, 1, append([]string{"status"}, hosts...)...)
	if len(st.Results) != len(hosts) || st.took < 6*time.Second {
		t.Errorf("power status with the default stagger: %d results in %.1fs, want %d in 6 s or more", len(st.Results), st.took.Seconds(), len(hosts))
	}
	for _, r := range st.Results {
		if (r.Hostname == "bmc-rf-01") != (r.Error == "") || r.Hostname == "bmc-rf-01" && r.State != "on" {
			t.Errorf("power status %s: %+v", r.Hostname, r)
		}
	}

	if r := cli.power(t, 0, "off", "bmc-rf-01").one(t); r.State != "off" {
		t.Errorf("power off: %+v", r)
	}
	if vm.IsOn() {
		t.Errorf("power off: QEMU still running")
	}
	if r := cli.power(t, 0, "status", "bmc-rf-01").one(t); r.State != "off" {
		t.Errorf("power status after off: %+v", r)
	}
}

// bmcPowerResult is one machine's outcome in `rackboot power … --json`.
type bmcPowerResult struct {
	MAC      string    `json:"mac"`
	Hostname string    `json:"hostname"`
	Action   string    `json:"action"`
	NetBoot  bool      `json:"netboot"`
	State    string    `json:"state"` // on, off, unknown
	Error    string    `json:"error"`
	Kind     string    `json:"kind"` // auth, unreachable, timeout, tls, bmc, config
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

// bmcPowerOutput is `rackboot power … --json`, and how long it took.
type bmcPowerOutput struct {
	Results []bmcPowerResult `json:"results"`
	took    time.Duration
}

// one is the only result.
func (o bmcPowerOutput) one(t *testing.T) bmcPowerResult {
	t.Helper()
	if len(o.Results) != 1 {
		t.Fatalf("power: %d results, want 1: %+v", len(o.Results), o.Results)
	}
	return o.Results[0]
}

// powerCLI runs rackboot's admin commands in the server namespace, as
// rackbootCLI does, with their exit status and duration.
type powerCLI struct {
	tb  *testbed
	bin string
}

type cliResult struct {
	stdout, stderr string
	exit           int
	took           time.Duration
}

func (c powerCLI) run(timeout time.Duration, args ...string) cliResult {
	full := append(append([]string(nil), args...), "--data", c.tb.data, "--server", "https://"+lab.ServerIP+":"+httpsPort)
	cmd := c.tb.net.Command(c.tb.net.Srv, c.bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return cliResult{stderr: err.Error(), exit: -1}
	}
	kill := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	kill.Stop()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.exit = ee.ExitCode()
	} else if err != nil {
		r.exit = -1
	}
	return r
}

// power runs `rackboot power ARGS --json` and wants exit status exit (0:
// every machine succeeded, 1: some failed).
func (c powerCLI) power(t *testing.T, exit int, args ...string) bmcPowerOutput {
	t.Helper()
	r := c.run(2*time.Minute, append([]string{"power"}, append(args, "--json")...)...)
	t.Logf("rackboot power %s --json (%.2fs, exit %d): %s%s", strings.Join(args, " "), r.took.Seconds(), r.exit, r.stdout, r.stderr)
	if r.exit != exit {
		t.Fatalf("rackboot power %s: exit %d, want %d", strings.Join(args, " "), r.exit, exit)
	}
	var out bmcPowerOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("rackboot power %s --json: %v", strings.Join(args, " "), err)
	}
	out.took = r.took
	return out
}
