//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/e2e/lab"
)

// The attack of TestUnderAttack (issue 13's acceptance): from the client
// namespace's one address, 2,000 idle HTTP connections and 300 TFTP
// requests that are never acknowledged.
const (
	floodSilent  = 1200 // connect, send nothing
	floodPartial = 600  // half a request header
	floodUnread  = 200  // a whole request for the OS image, answer never read
	floodTFTP    = 300
	// floodNBP is what the TFTP flood asks for: the boot program the
	// UEFI machine itself fetches over TFTP (lab.IPXEDir).
	floodNBP = "snponly.efi"
	// rackbootNofile is the daemon's open-file limit in the test: a
	// common default (systemd's soft limit, ulimit -n), which the 2,300
	// sockets of the attack alone would exhaust.
	rackbootNofile = 1024
	// attackInstallTimeout bounds each install under attack: twice the
	// quiet one.
	attackInstallTimeout = 2 * installTimeout
)

// TestUnderAttack installs a BIOS and a UEFI machine while one address
// floods rackboot: 2,000 idle TCP connections to its HTTP port (silent,
// half a header, a large download never read) and 300 TFTP read requests
// for the UEFI machine's own boot program that are never acknowledged,
// both renewed whenever the server drops them. rackboot runs with an
// open-file limit of 1,024, which the attack would exhaust if the server
// kept what it is sent. Both machines must boot over PXE (the UEFI one
// through TFTP) and install, and the attack must have been running all
// along: the test logs what each side counted.
func TestUnderAttack(t *testing.T) {
	requireLab(t)
	ctx := testContext(t)
	// RACKBOOT_E2E_ATTACK=off runs the same installs without the attack,
	// for the timings to compare with.
	quiet := os.Getenv("RACKBOOT_E2E_ATTACK") == "off"
	raiseNofile(t, floodSilent+floodPartial+floodUnread+floodTFTP+1024)
	work := t.TempDir()
	img := buildTestOS(t, work)
	initrd := buildAgentInitrd(t, ctx, work)
	// RACKBOOT_E2E_ATTACK_SERVE adds flags to rackboot serve, for control
	// runs with a defence turned off ("--http-max-conns 100000
	// --tftp-max-per-client 0"); such a run is expected to fail.
	serveFlags := strings.Fields(os.Getenv("RACKBOOT_E2E_ATTACK_SERVE"))
	if len(serveFlags) > 0 {
		t.Logf("RACKBOOT_E2E_ATTACK_SERVE: rackboot serve %s", strings.Join(serveFlags, " "))
	}
	tb := startTestbed(t, ctx, testbedConfig{
		fleet:  installFleet(img.sha256),
		files:  map[string]string{"testos-1.img.zst": img.zst, "agent.cpio.gz": initrd},
		serve:  serveFlags,
		nofile: rackbootNofile,
	})
	pid := tb.rackboot.Pid()
	limit, err := nofileLimit(pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%d:%d", rackbootNofile, rackbootNofile); limit != want {
		t.Fatalf("rackboot's open-file limit is %s, want %s", limit, want)
	}
	serving := findEntry(tb.entries(t), "rackboot serving")
	t.Logf("rackboot (pid %d): open files limit %s, http_max_conns %s, tftp_max_per_client %s",
		pid, limit, serving.Str("http_max_conns"), serving.Str("tftp_max_per_client"))

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	fds := &fdWatch{pid: pid}
	go fds.run(watchCtx)
	time.Sleep(500 * time.Millisecond)
	idleFDs := fds.last.Load()

	attackCtx, stopAttack := context.WithCancel(ctx)
	defer stopAttack()
	hf := &httpFlood{
		dial: tb.net.DialContext(tb.net.Cli),
		addr: net.JoinHostPort(lab.ServerIP, httpPort),
		path: "/artifacts/testos-1.img.zst",
		n:    [connKinds]int{connSilent: floodSilent, connPartial: floodPartial, connUnread: floodUnread},
		wait: 2 * time.Second,
		// The server drops a client that stops reading one stall
		// timeout after its buffers fill.
		renew: artifacts.DefaultStallTimeout + 5*time.Second,
	}
	tf := &tftpFlood{
		listen: func() (net.PacketConn, error) { return tb.net.ListenPacket(tb.net.Cli, "udp4", lab.ClientIP+":0") },
		server: &net.UDPAddr{IP: net.ParseIP(lab.ServerIP), Port: 69},
		file:   floodNBP,
		n:      floodTFTP,
		resend: 3 * time.Second,
	}
	attackStart := time.Now()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			stopAttack()
			hf.done()
			tf.done()
		})
	}
	defer stop()
	if quiet {
		t.Log("RACKBOOT_E2E_ATTACK=off: no attack, the installs alone")
	} else {
		startAttack(t, attackCtx, hf, tf)
	}
	// A request on a new connection every 5 s from another address (the
	// site namespace's, as a machine has its own): how long a newcomer
	// waits while the attack runs.
	pr := &prober{dial: tb.net.DialContext(tb.net.Site), url: "http://" + hf.addr + "/healthz", every: 5 * time.Second}
	probing := make(chan struct{})
	go func() { defer close(probing); pr.run(attackCtx) }()
	// How many connections the flood holds, once a second: a close is
	// followed by a pause, so the count moves; its mean says whether the
	// flood kept up.
	var heldSum, heldN, heldMin int64 = 0, 0, -1
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for attackCtx.Err() == nil {
			h := hf.held.Load()
			heldSum, heldN = heldSum+h, heldN+1
			if heldMin < 0 || h < heldMin {
				heldMin = h
			}
			sleep(attackCtx, time.Second)
		}
	}()
	cpu0, self0 := cpuTime(t, pid), selfCPU(t)

	machines := []struct {
		name string
		fw   lab.Firmware
		mac  string
	}{
		{name: "bios", fw: lab.BIOS, mac: installBIOSMAC},
		{name: "uefi", fw: lab.UEFI, mac: installUEFIMAC},
	}
	vms := make([]*lab.VM, len(machines))
	for i, m := range machines {
		hw, _ := net.ParseMAC(m.mac)
		vm, err := tb.net.StartVM(ctx, lab.VMConfig{Name: "attack-" + m.name, Dir: tb.dir, Firmware: m.fw, MAC: hw, DiskSize: diskSize})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vm.Close() })
		vms[i] = vm
	}
	type result struct {
		line   lab.Line
		err    error
		during httpCounts // the HTTP flood when the install was done
		tftp   string
	}
	results := make([]result, len(vms))
	done := make(chan int)
	for i, vm := range vms {
		go func() {
			line, err := vm.WaitFor(ctx, "rackboot-agent: install done", attackInstallTimeout)
			results[i] = result{line: line, err: err, during: hf.counts(), tftp: tf.String()}
			done <- i
		}()
	}
	for range vms {
		<-done
	}
	attackFor := time.Since(attackStart)
	held := hf.counts()
	stop()
	<-probing
	<-sampled
	stopWatch()
	cpu, self := cpuTime(t, pid)-cpu0, selfCPU(t)-self0
	t.Logf("GET /healthz on a new connection from %s every %v while the machines installed: %s", lab.SiteIP, pr.every, pr)
	t.Logf("CPU over those %.0f s: rackboot %.1f s, the test process (the floods, when on) %.1f s", attackFor.Seconds(), cpu.Seconds(), self.Seconds())
	if pr.failures() > 0 {
		t.Errorf("%d of the /healthz requests failed", pr.failures())
	}

	for i, m := range machines {
		r, vm := results[i], vms[i]
		if r.err != nil {
			t.Errorf("%s did not install: %v\nlast console lines (%s):\n%s", m.name, r.err, vm.SerialLog(), vm.Tail(40))
			continue
		}
		if quiet {
			t.Logf("%s: %s", m.name, r.line)
			continue
		}
		t.Logf("%s: %s; the HTTP flood then: %s; TFTP flood: %s", m.name, r.line, r.during, r.tftp)
	}
	if t.Failed() {
		t.Fatalf("last rackboot log lines:\n%s", readTail(tb.serverLog, 40))
	}
	for _, vm := range vms {
		select { // the agent reboots; -no-reboot makes that QEMU's exit
		case <-vm.Done():
		case <-time.After(60 * time.Second):
			t.Errorf("%s still running 60 s after its install", vm.Name())
		}
	}

	admin := tb.adminAPI(t)
	for _, m := range machines {
		checkRecord(t, admin, m.mac, img)
	}
	entries := tb.entries(t)
	uefiIP := tb.lease(t, installUEFIMAC)
	for _, x := range []expectation{
		tftpDone(floodNBP, installUEFIMAC, uefiIP),
		artifactServed(lab.KernelName, installBIOSMAC),
		artifactServed(lab.KernelName, installUEFIMAC),
	} {
		if !logged(entries, x.match) {
			t.Errorf("rackboot logged no %s", x.name)
		}
	}
	var timelines []lab.Timeline
	for i, m := range machines {
		// EDK2 fetches iPXE over TFTP (the BIOS machine's ROM is iPXE:
		// no TFTP); both then fetch the script over HTTP.
		ms := append([]lab.Milestone{
			installMilestones(m.mac)[0],
			{Name: "tftp", Server: tftpDone(floodNBP, m.mac, tb.lease(t, m.mac)).match},
			{Name: "script", Server: scriptServed(m.mac).match},
		}, installMilestones(m.mac)[1:]...)
		tl, err := lab.NewTimeline(vms[i], since(entries, vms[i].Started()), ms)
		if err != nil {
			t.Fatal(err)
		}
		timelines = append(timelines, tl)
	}
	t.Logf("seconds from power-on (rackboot log and serial console):\n%s", lab.FormatTimelines(timelines))
	if quiet {
		return
	}

	mt := scrape(t, admin)
	// The daemon's two HTTP defences: an address's connections beyond
	// --http-max-per-client closed at once (refused), idle connections
	// closed at --http-max-conns (shed). With the per-address cap on, the
	// flood never reaches the global cap.
	shed, refusedConns := mt["rackboot_http_connections_shed_total"], mt["rackboot_http_connections_refused_total"]
	if shed+refusedConns < float64(hf.total()/2) {
		t.Errorf("rackboot closed %.0f of the flood's connections (refused %.0f, shed %.0f), want at least %d: the flood was not held off",
			shed+refusedConns, refusedConns, shed, hf.total()/2)
	}
	limited := mt[`rackboot_tftp_transfers_total{outcome="limited"}`]
	failed := mt[`rackboot_tftp_transfers_total{outcome="failed"}`]
	t.Logf("attack ran %.0f s. HTTP flood at the end: %s", attackFor.Seconds(), held)
	t.Logf("TFTP flood: %s; transfers held at once, on average: %.1f (admitted x %.1f s give-up / %.0f s)",
		tf, float64(tf.admitted.Load())*tftpGiveUp.Seconds()/attackFor.Seconds(), tftpGiveUp.Seconds(), attackFor.Seconds())
	t.Logf("rackboot: descriptors %d before the attack, peak %d during it (limit %s); HTTP connections refused for their address %.0f, idle ones shed %.0f; "+
		"TFTP transfers by outcome: limited %.0f, busy %.0f, failed %.0f, ok %.0f; process_max_fds %.0f",
		idleFDs, fds.peak.Load(), limit, refusedConns, shed, limited, mt[`rackboot_tftp_transfers_total{outcome="busy"}`],
		failed, mt[`rackboot_tftp_transfers_total{outcome="ok"}`], mt["process_max_fds"])

	if heldN > 0 {
		mean := heldSum / heldN
		// The attacker's own view: with the per-address cap the server
		// closes most of them at once, and the flood reopens them.
		t.Logf("connections the flood believed it held, sampled every second: mean %d, min %d", mean, heldMin)
	}
	if sum := held.allOpened(); sum < int64(hf.total()) {
		t.Errorf("the HTTP flood opened %d connections, want at least %d", sum, hf.total())
	}
	if tf.sent.Load() < floodTFTP {
		t.Errorf("the TFTP flood sent %d requests, want at least %d", tf.sent.Load(), floodTFTP)
	}
	if tf.limited.Load() == 0 || limited == 0 {
		t.Errorf("no TFTP request refused for its address (flood counted %d, rackboot %.0f): the per-client cap did not act", tf.limited.Load(), limited)
	}
	if tf.admitted.Load() == 0 || failed == 0 {
		t.Errorf("the TFTP flood held no transfer (admitted %d, failed %.0f)", tf.admitted.Load(), failed)
	}
	if tf.busy.Load() > 0 {
		t.Errorf("the TFTP flood got %d 'server busy' refusals: one address reached the global cap", tf.busy.Load())
	}
	if p := fds.peak.Load(); p >= rackbootNofile {
		t.Errorf("rackboot held %d descriptors, its whole limit", p)
	}
	select {
	case <-tb.rackboot.Done():
		t.Errorf("rackboot exited during the attack: %v", tb.rackboot.Err())
	default:
	}
}

// tftpGiveUp is how long rackboot keeps a transfer whose client never
// acknowledges (tftp.DefaultTimeout, DefaultMaxTimeout, DefaultRetries).
const tftpGiveUp = 5600 * time.Millisecond

// startAttack starts both floods and returns once every HTTP connection
// has been opened once.
func startAttack(t *testing.T, attackCtx context.Context, hf *httpFlood, tf *tftpFlood) {
	t.Helper()
	start := time.Now()
	if err := tf.start(attackCtx); err != nil {
		t.Fatalf("TFTP flood: %v", err)
	}
	hf.start(attackCtx)
	ramp := time.Now().Add(2 * time.Minute)
	for {
		c := hf.counts()
		if n := c.allOpened(); n >= int64(hf.total()) {
			t.Logf("attack up after %.1f s: %d connections opened (%s); TFTP: %s",
				time.Since(start).Seconds(), n, c, tf)
			break
		}
		if time.Now().After(ramp) {
			t.Fatalf("the HTTP flood opened only %d connections in 2 minutes: %s", c.allOpened(), c)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// raiseNofile makes sure this process may open want descriptors (the
// flood's sockets live in the test process).
func raiseNofile(t *testing.T, want uint64) {
	t.Helper()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= want {
		return
	}
	rl.Cur = want
	rl.Max = max(rl.Max, want) // root may raise the hard limit too
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("raising the open-file limit to %d: %v", want, err)
	}
}

// prober times a GET on a new connection every interval until its
// context ends.
type prober struct {
	dial  func(context.Context, string, string) (net.Conn, error)
	url   string
	every time.Duration

	mu   sync.Mutex
	took []time.Duration // of the requests answered
	errs []string
}

func (p *prober) run(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		err := probe(ctx, p.dial, p.url)
		p.mu.Lock()
		switch {
		case err == nil:
			p.took = append(p.took, time.Since(start))
		case ctx.Err() == nil:
			p.errs = append(p.errs, fmt.Sprintf("%v after %.1f s", err, time.Since(start).Seconds()))
		}
		p.mu.Unlock()
		sleep(ctx, p.every)
	}
}

func (p *prober) failures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.errs)
}

func (p *prober) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	took := slices.Clone(p.took)
	slices.Sort(took)
	s := fmt.Sprintf("%d answered", len(took))
	if len(took) > 0 {
		s += fmt.Sprintf(" in %.2f s (min) / %.2f s (median) / %.2f s (max)",
			took[0].Seconds(), took[len(took)/2].Seconds(), took[len(took)-1].Seconds())
	}
	if len(p.errs) > 0 {
		s += fmt.Sprintf(", %d failed: %v", len(p.errs), p.errs)
	}
	return s
}

// cpuTime is the CPU time (user and system) process pid has used, from
// /proc/PID/stat in clock ticks of 1/100 s (USER_HZ on Linux); 0 when the
// process is gone (the test says so elsewhere).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Logf("CPU time of rackboot: %v", err)
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count the fields after its closing one (utime and stime are 14
	// and 15, so the 12th and 13th after it).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// selfCPU is the CPU time this test process has used.
func selfCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// probe makes one GET with a new connection and reads the answer, within
// two minutes.
func probe(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), url string) error {
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// scrape reads rackboot's /metrics: each sample by its series (name and
// labels as written), for the few the test quotes.
func scrape(t *testing.T, admin adminAPI) map[string]float64 {
	t.Helper()
	resp, err := admin.hc.Get("http://" + lab.ServerIP + ":" + httpPort + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// findEntry returns the first log entry with message msg.
func findEntry(entries []lab.LogEntry, msg string) lab.LogEntry {
	for _, e := range entries {
		if e.Msg == msg {
			return e
		}
	}
	return lab.LogEntry{}
}
