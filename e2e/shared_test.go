//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// sharedMachines are TestSharedStore's machines: three BIOS machines of
// rack 1 (the quickest to boot), installing the stable channel's
// demo-1.0 with the compact layout. The first is the one whose appliance
// is killed while it writes its image.
var sharedMachines = []rack.Machine{
	{Name: "shared1", MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x31}, Firmware: lab.BIOS, NIC: "virtio-net-pci", DiskSize: 8 << 30},
	{Name: "shared2", MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x32}, Firmware: lab.BIOS, NIC: "virtio-net-pci", DiskSize: 8 << 30},
	{Name: "shared3", MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x33}, Firmware: lab.BIOS, NIC: "virtio-net-pci", DiskSize: 8 << 30},
}

// sharedFleetYAML adds sharedMachines to the example fleet.
const sharedFleetYAML = `# TestSharedStore's hosts (e2e/shared_test.go): rack 1 by their MAC prefix.
hosts:
  - { mac: "52:54:00:77:00:31", hostname: r1-sh01, network: { address: 10.0.1.41/24 } }
  - { mac: "52:54:00:77:00:32", hostname: r1-sh02, network: { address: 10.0.1.42/24 } }
  - { mac: "52:54:00:77:00:33", hostname: r1-sh03, network: { address: 10.0.1.43/24 } }
`

// applianceBIP is the second appliance's address on the boot segment
// (the first is lab.ServerIP).
const applianceBIP = "192.168.77.4"

// etcdLeaderKillDelay is how long after the appliance's kill the etcd
// leader is killed: while the machine's agent fails over to the other
// appliance (its retries come after 1 s and 2 s), which must then write
// through a cluster electing a new leader.
const etcdLeaderKillDelay = 2 * time.Second

// TestSharedStore is issue 18's end-to-end acceptance: "a three-member
// etcd cluster and two rackboot appliances on the same boot segment;
// three QEMU machines install; kill -9 of the appliance that served a
// machine's script while that machine installs, and of one etcd member:
// every install still completes and is recorded exactly once, history has
// no gap and no duplicate, and `rackboot hosts` on the surviving
// appliance shows the truth."
//
// Both appliances (A in the server namespace, B in a host of its own on
// the bridge) answer proxy-DHCP on the segment and store the fleet in the
// lab's etcd cluster (lab.Net.StartEtcd). The three machines power on at
// once; the first one's script is served by one of them, which is killed
// with SIGKILL at the machine's first image progress (every machine's link
// slowed once its agent starts, so the images take seconds), and the etcd
// leader two seconds later. Then:
// every machine installs and boots its disk through the survivor; the
// survivor's registry has each host installed after exactly one
// successful attempt, numbered 1, nothing left running; its `rackboot
// hosts` and `rackboot history` say so; its live events (the SSE API, what
// `rackboot watch` reads) showed the image progress the agent reported to
// the other appliance before the kill; the killed etcd member restarted
// rejoins; each script listed both appliances' agent APIs.
func TestSharedStore(t *testing.T) {
	ctx := testContext(t)
	began := time.Now()
	s := startShared(t, ctx)
	steps := []struct {
		name string
		run  func(*testing.T, context.Context, *sharedLab)
	}{
		{"install-with-kills", testSharedInstall},
		{"records", testSharedRecords},
		{"events", testSharedEvents},
		{"etcd-rejoins", testSharedEtcdRejoins},
		{"boot-from-disk", testSharedBoot},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) { st.run(t, ctx, s) }) {
			break
		}
	}
	t.Logf("installs, seconds from power-on:\n%s", lab.FormatTimelines(s.installs))
	t.Logf("TestSharedStore took %.1f s (lab ready after %.1f s)", time.Since(began).Seconds(), s.ready.Sub(began).Seconds())
}

// sharedLab is TestSharedStore's lab: the example rack's build and fleet
// with sharedMachines, the etcd cluster, and appliances A and B.
type sharedLab struct {
	net   *lab.Net
	site  *lab.SiteDHCP
	etcd  *lab.Etcd
	apps  []*appliance // A, B
	built *rack.Built
	set   *profiles.Set
	dir   string
	ready time.Time

	// What testSharedInstall did, for the steps after it.
	victim, survivor *appliance
	killed           time.Time // the victim's SIGKILL
	etcdKilled       *lab.EtcdMember
	installs         []lab.Timeline
}

// appliance is one `rackboot serve` of the lab and the test's view of it.
type appliance struct {
	name   string // A or B
	rb     *lab.Rackboot
	admin  adminAPI
	events *eventStream
}

// startShared builds the rack, writes the fleet, creates the lab with its
// etcd cluster and starts both appliances on the cluster.
func startShared(t *testing.T, ctx context.Context) *sharedLab {
	t.Helper()
	requireRackHost(t)
	s := &sharedLab{dir: logDir(t)}
	start := time.Now()
	var err error
	s.built, err = rack.Build(ctx, rack.BuildConfig{Dir: t.TempDir(), Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built rackboot, the agent, its initramfs and the images in %.1f s", time.Since(start).Seconds())
	profDir := filepath.Join(s.dir, "profiles")
	if s.set, err = rack.WriteProfiles(profDir, s.built.Images, map[string]string{"shared.yaml": sharedFleetYAML}); err != nil {
		t.Fatal(err)
	}

	s.net = newLabNet(t, ctx)
	if err := s.net.PinBridgeAddress(ctx); err != nil {
		t.Fatal(err)
	}
	if s.site, err = s.net.StartSiteDHCP(s.dir); err != nil {
		t.Fatal(err)
	}
	s.etcd = startEtcd(t, ctx, s.net, s.dir)
	hostB, err := s.net.AddHost(ctx, "app2", applianceBIP)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		name string
		host lab.Host
	}{{"A", s.net.Server()}, {"B", hostB}} {
		lower := strings.ToLower(a.name)
		args := append(append([]string(nil), rack.ServeArgs...), "--store", s.etcd.StoreURL())
		rb, err := s.net.StartRackboot(ctx, lab.RackbootConfig{
			Binary: s.built.Rackboot, Profiles: profDir, Data: filepath.Join(s.dir, "data-"+lower),
			Artifacts: s.built.Artifacts, Log: filepath.Join(s.dir, "rackboot-"+lower+".log"),
			Host: a.host, Args: args,
		})
		if err != nil {
			t.Fatalf("appliance %s: %v", a.name, err)
		}
		s.apps = append(s.apps, &appliance{name: a.name, rb: rb})
		t.Logf("appliance %s serving at %s (%s)", a.name, rb.APIURL(), a.host.NS)
	}
	s.connect(t, ctx)
	s.ready = time.Now()
	t.Logf("lab ready; logs in %s", s.dir)
	return s
}

// connect makes each appliance's admin client and event stream. The
// appliances share the admin token and the CA that signs their API
// certificates (both kept in the store): A's token and CA must work with
// B. When they do not, the test says so and goes on with B's own.
func (s *sharedLab) connect(t *testing.T, ctx context.Context) {
	t.Helper()
	a := s.apps[0]
	a.admin = s.adminOf(t, a, a)
	for _, b := range s.apps[1:] {
		b.admin = s.adminOf(t, b, a)
		var hosts []api.HostView
		if err := b.admin.try("/api/hosts", &hosts); err != nil {
			t.Errorf("appliance %s refuses appliance %s's admin token or CA (both should be shared through the store): %v", b.name, a.name, err)
			b.admin = s.adminOf(t, b, b)
		}
	}
	for _, x := range s.apps {
		x.events = startEvents(t, ctx, x)
	}
	// Each appliance announces itself: both list both (they read the
	// announcements every 3 s).
	for _, x := range s.apps {
		var want []string
		for _, y := range s.apps {
			want = append(want, y.rb.APIURL())
		}
		if got, ok := s.waitAppliances(ctx, x, want, 20*time.Second); !ok {
			t.Errorf("appliance %s lists the appliances %v, want both of %v", x.name, got, want)
		}
	}
}

// waitAppliances waits until x's GET /api/appliances lists exactly the
// appliances whose API URLs are want, and returns the URLs it last
// listed.
func (s *sharedLab) waitAppliances(ctx context.Context, x *appliance, want []string, timeout time.Duration) ([]string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		var vs []api.ApplianceView
		var got []string
		if err := x.admin.try("/api/appliances", &vs); err != nil {
			got = []string{err.Error()}
		}
		for _, v := range vs {
			got = append(got, v.API...)
		}
		match := len(vs) == len(want)
		for _, w := range want {
			match = match && slices.Contains(got, w)
		}
		if match || time.Now().After(deadline) || ctx.Err() != nil {
			return got, match
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// adminOf is an admin client of appliance x with the token and CA found
// in the data directory of appliance from.
func (s *sharedLab) adminOf(t *testing.T, x, from *appliance) adminAPI {
	t.Helper()
	tok, err := from.rb.AdminToken()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := s.net.HTTPSClient(s.net.Cli, from.rb.Config().Data)
	if err != nil {
		t.Fatal(err)
	}
	return adminAPI{hc: hc, token: tok, base: x.rb.APIURL()}
}

// testSharedInstall powers the three machines on at once, their links
// slowed once their agents start (slowImages). The appliance that served
// the first machine's script is killed with SIGKILL at its first image
// progress, the etcd leader etcdLeaderKillDelay later; every machine must
// still install.
func testSharedInstall(t *testing.T, ctx context.Context, s *sharedLab) {
	vms := make([]*lab.VM, len(sharedMachines))
	for i, m := range sharedMachines {
		if err := m.NewDisk(s.dir); err != nil {
			t.Fatal(err)
		}
		vm, err := m.PowerOn(ctx, s.net, s.dir, m.Name+"-install")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vm.Close() })
		vms[i] = vm
	}
	m, vm := sharedMachines[0], vms[0]
	served := s.scriptServer(t, ctx, m, vm.Started())
	s.victim = served
	for _, a := range s.apps {
		if a != served {
			s.survivor = a
		}
	}
	t.Logf("%s's script was served by appliance %s: it is the one killed, %s survives", m.Name, s.victim.name, s.survivor.name)
	// The installers come at full speed; the images go slowly, so the
	// kills fall in the middle of the image writes: the first machine's,
	// and the others' when their agents started about as early.
	release := slowImages(t, ctx, vms)
	if _, err := vm.WaitFor(ctx, `rackboot-agent starting`, rackPowerOn); err != nil {
		t.Fatalf("%v\n%s", err, vm.Tail(20))
	}
	if l, err := vm.WaitFor(ctx, `rackboot\.server=`, 30*time.Second); err == nil {
		t.Logf("%s's installer has rackboot.server=%s", m.Name, serverParamRE.FindStringSubmatch(l.Text)[1])
	}
	first, err := vm.WaitFor(ctx, `progress image`, rackPowerOn)
	if err != nil {
		t.Fatalf("%v\n%s", err, vm.Tail(20))
	}
	// The agent prints its progress, then reports it: the kill waits for
	// the report to reach the victim (its own event stream shows it) and
	// gives the other appliance a moment to hear of it through the
	// store (events go out in batches every 200 ms), so that the events
	// step can tell whether they are shared.
	imageProgress := func(ev streamedEvent) bool {
		return ev.MAC == m.MAC.String() && ev.Type == api.EventProgress && ev.Phase == "image"
	}
	if !s.victim.events.waitFor(ctx, imageProgress, 30*time.Second) {
		t.Errorf("appliance %s's own event stream shows no image progress of %s 30 s after the agent printed it", s.victim.name, m.Name)
	}
	s.survivor.events.waitFor(ctx, imageProgress, 3*time.Second)
	s.victim.rb.Kill()
	s.killed = time.Now()
	t.Logf("killed appliance %s (%v) at %s's first image progress, %.1f s after power-on: %s",
		s.victim.name, s.victim.rb.Process().Err(), m.Name, s.killed.Sub(vm.Started()).Seconds(), first.Text)

	time.Sleep(etcdLeaderKillDelay)
	leader, err := s.etcd.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.etcd.Kill(leader)
	s.etcdKilled = leader
	killedAt := time.Now()
	if err := s.etcd.WaitHealthy(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	next, err := s.etcd.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the etcd leader %s; %s leads %.1f s later", leader.Name, next.Name, time.Since(killedAt).Seconds())
	// The rest of the image at full speed, once the agent is back.
	if _, err := vm.WaitFor(ctx, `msg="download (resumed|interrupted)"|rackboot-agent: install done|INSTALL FAILED`, 60*time.Second); err != nil {
		t.Logf("no download interruption on %s's console: %v", m.Name, err)
	}
	release()

	var wg sync.WaitGroup
	var mu sync.Mutex
	doneAt := make([]time.Time, len(sharedMachines))
	for i, m := range sharedMachines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			end, done, err := rack.WaitInstall(ctx, vms[i], rackPowerOn)
			if err != nil {
				t.Errorf("%s: %v\nlast lines of the survivor's log:\n%s", m.Name, err, readTail(s.survivor.rb.Config().Log, 20))
				return
			}
			if !done {
				t.Errorf("%s: the install failed: %s\n%s", m.Name, end.Line.Text, vms[i].Tail(30))
			}
			t.Logf("%s: %s at %.1f s (QEMU off at %.1f s)", m.Name, end.Line.Text, end.Line.At.Seconds(), end.Off.Seconds())
			doneAt[i] = vms[i].Started().Add(end.Line.At)
			tl := s.timeline(t, vms[i], rack.InstallMilestones(m.MAC))
			tl.Points = append(tl.Points, lab.Point{Name: "off", At: end.Off, Found: true})
			mu.Lock()
			s.installs = append(s.installs, tl)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for i, x := range sharedMachines {
		when := "done before the kills"
		if doneAt[i].IsZero() || doneAt[i].After(s.killed) {
			when = "installing at the kills"
		}
		t.Logf("%s: script from appliance %s, %s", x.Name, s.scriptServer(t, ctx, x, vms[i].Started()).name, when)
	}
	// Each script lists every appliance's agent API, its own first, for
	// the agent to fail over along (rackboot.server=, as the agent logs
	// its kernel command line).
	for i, x := range sharedMachines {
		l, ok, err := vms[i].Find(`rackboot\.server=`)
		if err != nil || !ok {
			t.Errorf("%s's agent logged no kernel command line with rackboot.server= (%v)", x.Name, err)
			continue
		}
		servers := strings.Split(serverParamRE.FindStringSubmatch(l.Text)[1], ",")
		for _, a := range s.apps {
			if !slices.Contains(servers, a.rb.APIURL()) {
				t.Errorf("%s's installer was given rackboot.server=%s, without appliance %s's %s", x.Name, strings.Join(servers, ","), a.name, a.rb.APIURL())
			}
		}
	}
	if t.Failed() {
		return
	}
	for _, want := range []string{`msg="download interrupted"`, `msg="download resumed"`} {
		if !consoleHas(t, vm, want) {
			t.Logf("note: %s's agent printed no %s (the kill came between two requests)", m.Name, want)
		}
	}
	for i, x := range sharedMachines {
		if l, ok, _ := vms[i].Find(`unreachable.*going on with`); ok {
			t.Logf("%s's agent failed over: %s", x.Name, l.Text)
		}
	}
}

// slowImages limits each machine's link to crashRate once its agent
// starts (what it fetches from then on is mostly the image), until the
// function it returns is called, which removes the limits.
func slowImages(t *testing.T, ctx context.Context, vms []*lab.VM) (release func()) {
	wait, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex // held while limiting, so that none is limited after release
	var slowed []*lab.VM
	for _, vm := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := vm.WaitFor(wait, `rackboot-agent starting`, rackPowerOn); err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if wait.Err() != nil {
				return
			}
			if err := vm.LimitRate(ctx, crashRate); err != nil {
				t.Errorf("slowing %s: %v", vm.Name(), err)
				return
			}
			slowed = append(slowed, vm)
		}()
	}
	return func() {
		mu.Lock()
		stop()
		done := slowed
		mu.Unlock()
		wg.Wait()
		for _, vm := range done {
			if err := vm.LimitRate(ctx, 0); err != nil {
				t.Errorf("%s: %v", vm.Name(), err)
			}
		}
	}
}

// serverParamRE reads rackboot.server= of the kernel command line the
// agent logs.
var serverParamRE = regexp.MustCompile(`rackboot\.server=([^ "]+)`)

// scriptServer waits until one of the appliances logs that it served m
// its installer script after from, and returns it.
func (s *sharedLab) scriptServer(t *testing.T, ctx context.Context, m rack.Machine, from time.Time) *appliance {
	t.Helper()
	match := rack.ScriptServed(m.MAC, "installer")
	deadline := time.Now().Add(rackPowerOn)
	for time.Now().Before(deadline) {
		var first *appliance
		var at time.Time
		for _, a := range s.apps {
			entries, err := lab.ReadLog(a.rb.Config().Log)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range since(entries, from) {
				if match(e) && (first == nil || e.Time.Before(at)) {
					first, at = a, e.Time
					break
				}
			}
		}
		if first != nil {
			return first
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("no appliance served %s its installer script within %v", m.Name, rackPowerOn)
	return nil
}

// timeline is vm's install timeline from the logs of both appliances.
func (s *sharedLab) timeline(t *testing.T, vm *lab.VM, ms []lab.Milestone) lab.Timeline {
	var all []lab.LogEntry
	for _, a := range s.apps {
		entries, err := lab.ReadLog(a.rb.Config().Log)
		if err != nil {
			t.Error(err)
			continue
		}
		all = append(all, entries...)
	}
	tl, err := lab.NewTimeline(vm, all, ms)
	if err != nil {
		t.Error(err)
	}
	return tl
}

// testSharedRecords reads the survivor's registry: each machine installed
// after one successful attempt, numbered 1, with the image's digest and
// size; no attempt left running; the first machine's attempt, begun with
// the killed appliance, holds its agent's log from both sides of the
// kill. `rackboot hosts` and `rackboot history` on the survivor agree.
func testSharedRecords(t *testing.T, ctx context.Context, s *sharedLab) {
	a := s.survivor
	// The killed appliance's announcement lapses with its lease (10 s,
	// renewed once by the new etcd leader).
	if got, ok := s.waitAppliances(ctx, a, []string{a.rb.APIURL()}, time.Until(s.killed.Add(45*time.Second))); !ok {
		t.Errorf("45 s after appliance %s's kill, appliance %s still lists %v", s.victim.name, a.name, got)
	}
	t.Logf("rackboot appliances on %s:\n%s", a.name, s.cli(t, a, "appliances"))
	hostsOut := s.cli(t, a, "hosts")
	t.Logf("rackboot hosts on appliance %s:\n%s", a.name, hostsOut)
	for i, m := range sharedMachines {
		h := s.host(t, m)
		mac := m.MAC.String()
		var hv api.HostView
		a.admin.get(t, "/api/hosts/"+mac, &hv)
		want := registry.Version{Name: h.Version.Name, Number: h.Version.Number}
		if hv.State != registry.StateInstalled || hv.Version != want {
			t.Errorf("%s on %s: %s with %+v (%s), want installed with %+v", h.Hostname, a.name, hv.State, hv.Version, hv.Reason, want)
		}
		var hist []registry.Attempt
		a.admin.get(t, "/api/hosts/"+mac+"/history?log=1", &hist)
		for _, p := range attemptProblems(hist) {
			t.Errorf("history of %s on %s: %s", h.Hostname, a.name, p)
		}
		im := s.built.Images[h.Version.Name]
		if len(hist) != 1 {
			t.Errorf("history of %s on %s: %d attempts, want exactly one: %+v", h.Hostname, a.name, len(hist), withoutLogs(hist))
		} else if at := hist[0]; at.Result != registry.ResultSuccess || at.Version != want ||
			at.ImageSHA256 != im.SHA256 || at.BytesWritten != im.UncompressedSize {
			t.Errorf("attempt of %s: %s %+v sha256 %s, %d bytes; want success %+v %s, %d bytes (error %q)",
				h.Hostname, at.Result, at.Version, at.ImageSHA256, at.BytesWritten, want, im.SHA256, im.UncompressedSize, at.Error)
		} else if i == 0 {
			for _, line := range []string{"plan received", "install done"} {
				if !logHas(at.Log, line) {
					t.Errorf("the attempt of %s, begun with appliance %s, lacks its agent's %q (%d lines)", h.Hostname, s.victim.name, line, len(at.Log))
				}
			}
		}
		// MAC, hostname, state, version, attempt.
		row := fmt.Sprintf(`(?m)^%s\s+%s\s+installed\s+%s \(%d\)\s+1\s`,
			regexp.QuoteMeta(mac), regexp.QuoteMeta(h.Hostname), regexp.QuoteMeta(want.Name), want.Number)
		if !regexp.MustCompile(row).MatchString(hostsOut) {
			t.Errorf("rackboot hosts on %s does not show %s (%s) installed with %s, attempt 1", a.name, h.Hostname, mac, want.Name)
		}
		out := s.cli(t, a, "history", mac)
		if n, r := len(successRE.FindAllString(out, -1)), len(runningRE.FindAllString(out, -1)); n != 1 || r != 0 {
			t.Errorf("rackboot history %s on %s lists %d successes and %d running attempts, want 1 and 0:\n%s", mac, a.name, n, r, out)
		}
		if i == 0 {
			t.Logf("rackboot history %s on %s:\n%s", mac, a.name, out)
		}
	}
	// Which appliance did what for the first machine, from their logs.
	for _, x := range s.apps {
		t.Logf("appliance %s logged for %s: %s", x.name, sharedMachines[0].Name, s.summary(t, x, sharedMachines[0]))
	}
}

// The result column of `rackboot history`.
var (
	successRE = regexp.MustCompile(`\ssuccess\s`)
	runningRE = regexp.MustCompile(`\srunning\s`)
)

// attemptProblems checks a host's history: attempt IDs 1, 2, 3… in order
// (no gap, no duplicate), numbers that count up from 1 between reinstall
// requests, and every attempt ended (none running).
func attemptProblems(hist []registry.Attempt) []string {
	var probs []string
	for i, a := range hist {
		if a.ID != i+1 {
			probs = append(probs, fmt.Sprintf("attempt %d of the list has ID %d, want %d", i+1, a.ID, i+1))
		}
		if a.Number < 1 || (i > 0 && a.Number != 1 && a.Number != hist[i-1].Number+1) {
			probs = append(probs, fmt.Sprintf("attempt ID %d is number %d after number %d", a.ID, a.Number, numberOf(hist, i-1)))
		}
		if a.Result == "" || a.Finished.IsZero() {
			probs = append(probs, fmt.Sprintf("attempt ID %d is still running (result %q, finished %v)", a.ID, a.Result, a.Finished))
		}
	}
	return probs
}

func numberOf(hist []registry.Attempt, i int) int {
	if i < 0 {
		return 0
	}
	return hist[i].Number
}

// summary counts what appliance x logged about m: scripts, plans and image
// requests.
func (s *sharedLab) summary(t *testing.T, x *appliance, m rack.Machine) string {
	entries, err := lab.ReadLog(x.rb.Config().Log)
	if err != nil {
		return err.Error()
	}
	counts := map[string]int{}
	for _, e := range entries {
		if !sameMACs(e.Str("mac"), m.MAC.String()) {
			continue
		}
		switch {
		case e.Msg == "script served":
			counts["script "+e.Str("outcome")]++
		case e.Msg == "plan served":
			counts["plan"]++
		case e.Msg == "artifact request" && strings.HasSuffix(e.Str("path"), rack.ImageFile("demo-1.0")):
			counts["image request "+e.Str("status")]++
		}
	}
	return fmt.Sprint(counts)
}

// sameMACs compares two MACs in any notation.
func sameMACs(a, b string) bool {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", ":")) }
	return a != "" && norm(a) == norm(b)
}

// testSharedEvents checks the survivor's live events: it saw the first
// machine's image progress that the agent reported to the other appliance
// before that one was killed (live events are shared through the store),
// and each machine's "done".
func testSharedEvents(t *testing.T, ctx context.Context, s *sharedLab) {
	m := sharedMachines[0]
	mac := m.MAC.String()
	victimSaw, survivorSaw := 0, 0
	for _, ev := range s.victim.events.all() {
		if ev.MAC == mac && ev.Type == api.EventProgress && ev.Phase == "image" && ev.Received.Before(s.killed) {
			victimSaw++
		}
	}
	for _, ev := range s.survivor.events.all() {
		if ev.MAC == mac && ev.Type == api.EventProgress && ev.Phase == "image" && ev.Received.Before(s.killed) {
			survivorSaw++
		}
	}
	t.Logf("before the kill, image progress events of %s: %d on %s's stream (where the agent reported), %d on %s's",
		m.Name, victimSaw, s.victim.name, survivorSaw, s.survivor.name)
	if survivorSaw == 0 {
		t.Errorf("appliance %s's live events showed no image progress of %s before appliance %s, which its agent reported to, was killed: events are not shared between appliances",
			s.survivor.name, m.Name, s.victim.name)
	}
	for _, x := range sharedMachines {
		done := false
		for _, ev := range s.survivor.events.all() {
			done = done || (ev.MAC == x.MAC.String() && ev.Type == api.EventState && ev.Event == "done")
		}
		if !done {
			t.Errorf("appliance %s's live events have no \"done\" of %s", s.survivor.name, x.Name)
		}
	}
	if err := s.survivor.events.failure(); err != "" {
		t.Logf("appliance %s's event stream: %s", s.survivor.name, err)
	}
}

// testSharedBoot powers the machines on again: the survivor alone
// answers, sends each to its disk, and the installed OS reports its
// version and hostname.
func testSharedBoot(t *testing.T, ctx context.Context, s *sharedLab) {
	began := time.Now()
	// All three at once, as after a power cut: goroutines rather than
	// parallel subtests, which -parallel (GOMAXPROCS, 2 here) would
	// queue.
	var wg sync.WaitGroup
	for _, m := range sharedMachines {
		h := s.host(t, m)
		vm, err := m.PowerOn(ctx, s.net, s.dir, m.Name+"-boot")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vm.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, end, err := rack.WaitOS(ctx, vm, rackPowerOn)
			if err != nil {
				t.Errorf("%s: %v\nlast lines of the survivor's log:\n%s", m.Name, err, readTail(s.survivor.rb.Config().Log, 20))
				return
			}
			if rep.Version != h.Version.Name || rep.Hostname != h.Hostname || !rep.Done {
				t.Errorf("%s's OS reported version %q, hostname %q, done %v; want %s, %s", m.Name, rep.Version, rep.Hostname, rep.Done, h.Version.Name, h.Hostname)
			}
			t.Logf("%s: %s (QEMU off at %.1f s)", m.Name, end.Line.Text, end.Off.Seconds())
		}()
	}
	wg.Wait()
	entries, err := lab.ReadLog(s.survivor.rb.Config().Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sharedMachines {
		if !logged(since(entries, began), rack.ScriptServed(m.MAC, "local")) {
			t.Errorf("appliance %s did not send %s to its disk (no local-boot script served)", s.survivor.name, m.Name)
		}
	}
}

// testSharedEtcdRejoins restarts the killed etcd member with its data:
// it rejoins, and the three members agree on a leader.
func testSharedEtcdRejoins(t *testing.T, ctx context.Context, s *sharedLab) {
	if err := s.etcd.Restart(ctx, s.etcdKilled); err != nil {
		t.Fatalf("restarting etcd member %s: %v", s.etcdKilled.Name, err)
	}
	st, err := s.etcd.Status(ctx)
	if err != nil || len(st) != 3 {
		t.Errorf("etcd after %s's restart: %+v (%v), want three members", s.etcdKilled.Name, st, err)
	}
}

// host returns m's profile.
func (s *sharedLab) host(t *testing.T, m rack.Machine) *profiles.Host {
	t.Helper()
	h, ok := s.set.Lookup(m.MAC)
	if !ok || h.Version == nil {
		t.Fatalf("%s (%s) is no host of the fleet with a version", m.Name, m.MAC)
	}
	return h
}

// cli runs an admin command against appliance a from the client
// namespace (its token and CA from a's data directory).
func (s *sharedLab) cli(t *testing.T, a *appliance, args ...string) string {
	t.Helper()
	out, err := a.rb.Command(s.net.Cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rackboot %s against appliance %s: %v\n%s", strings.Join(args, " "), a.name, err, out)
	}
	return string(out)
}

// try is get returning its error instead of failing the test.
func (a adminAPI) try(path string, out any) error {
	req, err := http.NewRequest(http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// streamedEvent is one event of an appliance's /api/events stream, with
// when the test received it.
type streamedEvent struct {
	Type     string // progress, state, log…
	MAC      string
	Phase    string // a progress event's
	Event    string // a state event's: boot, start, done…
	Received time.Time
}

// eventStream follows an appliance's /api/events (what `rackboot watch`
// reads) from the client namespace until the test ends, reconnecting
// after a broken stream.
type eventStream struct {
	mu     sync.Mutex
	events []streamedEvent
	errs   []string
}

func startEvents(t *testing.T, ctx context.Context, a *appliance) *eventStream {
	es := &eventStream{}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	hc := *a.admin.hc
	hc.Timeout = 0 // a stream
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := es.follow(ctx, &hc, a.admin); err != nil && ctx.Err() == nil {
				es.mu.Lock()
				es.errs = append(es.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
				es.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return es
}

// follow reads one connection's events.
func (es *eventStream) follow(ctx context.Context, hc *http.Client, admin adminAPI) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin.base+"/api/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+admin.token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /api/events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var typ string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var d struct {
				MAC   string `json:"mac"`
				Phase string `json:"phase"`
				Event string `json:"event"`
				Host  struct {
					MAC string `json:"mac"`
				} `json:"host"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				return fmt.Errorf("event %s: %w", typ, err)
			}
			mac := d.MAC
			if mac == "" {
				mac = d.Host.MAC
			}
			es.mu.Lock()
			es.events = append(es.events, streamedEvent{Type: typ, MAC: mac, Phase: d.Phase, Event: d.Event, Received: time.Now()})
			es.mu.Unlock()
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("the stream ended")
}

// waitFor waits until the stream has had an event match accepts, and
// reports whether it has.
func (es *eventStream) waitFor(ctx context.Context, match func(streamedEvent) bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		for _, ev := range es.all() {
			if match(ev) {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (es *eventStream) all() []streamedEvent {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]streamedEvent(nil), es.events...)
}

// failure says what broke the stream, if anything did.
func (es *eventStream) failure() string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return strings.Join(es.errs, "; ")
}
