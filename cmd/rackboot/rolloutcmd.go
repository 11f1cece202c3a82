package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/rollout"
)

// runRollout starts and steers staged rollouts (docs/DESIGN.md, "Staged
// rollouts"): the daemon drives them, so they go on when this command
// ends, and survive its restart.
func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).rollout(ctx, args)
}

const rolloutUsage = `usage: rackboot rollout start --version NAME (MAC|HOSTNAME... | --selector KEY=VALUE | --channel NAME | --version-below N)
                        (--wave-size N | --wave-percent P) [--canary N] [--max-failures N] [--soak DURATION]
                        [--wave-timeout DURATION] [--reason TEXT] [--dry-run] [--yes] [--json]
       rackboot rollout status [ID] [--json]
       rackboot rollout pause|resume|abort ID [--json]
`

func (c *cli) rollout(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fmt.Fprint(c.stdout, rolloutUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "start":
		return c.rolloutStart(ctx, args[1:])
	case "status", "list":
		return c.rolloutStatus(ctx, args[1:])
	case "pause", "resume", "abort":
		return c.rolloutControl(ctx, args[0], args[1:])
	}
	fmt.Fprintf(c.stderr, "rackboot rollout: %q: want start, status, pause, resume or abort\n%s", args[0], rolloutUsage)
	return 2
}

func (c *cli) rolloutStart(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("rollout start", strings.TrimPrefix(strings.SplitN(rolloutUsage, "\n       ", 2)[0], "usage: "))
	version := fs.String("version", "", "catalog version `name` to move the hosts to (required)")
	var selectors []string
	fs.Var(&listFlag{list: &selectors}, "selector", "hosts with label `KEY=VALUE` (repeatable or comma-separated; all must hold)")
	channel := fs.String("channel", "", "hosts whose profile's version is of channel `name`")
	below := fs.String("version-below", "", "hosts whose installed version `number` is below N")
	canary := fs.Int("canary", 0, "size of the first wave, the canary (0: no separate canary wave)")
	waveSize := fs.Int("wave-size", 0, "hosts per later wave")
	wavePercent := fs.Int("wave-percent", 0, "hosts per later wave, as a `percent` of the selection")
	maxFailures := fs.Int("max-failures", 0, "failed hosts a wave tolerates; one more halts the rollout")
	soak := fs.Duration("soak", 0, "wait this `duration` after a healthy wave before the next one")
	waveTimeout := fs.Duration("wave-timeout", rollout.DefaultWaveTimeout, "a host not installed this `duration` after its wave's power cycle has failed")
	reason := fs.String("reason", "", "why, recorded with each host's reinstall request")
	dryRun := fs.Bool("dry-run", false, "show the waves; start nothing")
	yes := fs.Bool("yes", false, "start without asking (required when stdin is not a terminal)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if *version == "" {
		fmt.Fprintln(c.stderr, "rackboot rollout start: --version is required")
		return 2
	}
	sel, ok := parseSelectors("rollout start", selectors, c.stderr)
	if !ok {
		return 2
	}
	req := api.RolloutRequest{Version: *version, Selector: sel, Channel: *channel, Canary: *canary, WaveSize: *waveSize, WavePercent: *wavePercent,
		MaxFailures: *maxFailures, SoakMS: soak.Milliseconds(), WaveTimeoutMS: waveTimeout.Milliseconds(), Reason: *reason, By: c.user}
	if *below != "" {
		n, err := strconv.Atoi(*below)
		if err != nil {
			fmt.Fprintf(c.stderr, "rackboot rollout start: --version-below %q: want a version number\n", *below)
			return 2
		}
		req.VersionBelow = &n
	}
	if len(pos) == 0 && sel == nil && *channel == "" && req.VersionBelow == nil {
		fmt.Fprintln(c.stderr, "rackboot rollout start: name hosts, or give --selector, --channel or --version-below")
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("rollout", err)
	}
	hs, _, err := cl.hosts(ctx, nil)
	if err != nil {
		return c.fail("rollout", err)
	}
	for _, arg := range pos {
		mac, err := findHost(hs, arg)
		if err != nil {
			return c.fail("rollout", err)
		}
		req.MACs = append(req.MACs, mac)
	}
	names := map[string]string{}
	for _, h := range hs {
		names[h.MAC] = h.Hostname
	}
	preview := req
	preview.DryRun = true
	var plan rollout.Rollout
	if err := cl.post(ctx, "/api/rollouts", preview, &plan); err != nil {
		return c.fail("rollout", err)
	}
	if *dryRun {
		return c.printRollout(plan, names, *asJSON)
	}
	if !*yes {
		if c.interactive == nil || !c.interactive() {
			fmt.Fprintf(c.stderr, "rackboot rollout start: %s in %d waves; stdin is not a terminal to ask: give --yes (--dry-run shows the waves)\n", machineCount(len(plan.Spec.Hosts)), len(plan.Waves))
			return 2
		}
		fmt.Fprint(c.stderr, rolloutText(plan, names, c.loc))
		fmt.Fprintf(c.stderr, "start this rollout? [y/N] ")
		var answer string
		fmt.Fscanln(c.stdin, &answer)
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(c.stderr, "nothing started")
			return 1
		}
	}
	req.MACs, req.Selector, req.Channel, req.VersionBelow = plan.Spec.Hosts, nil, "", nil // what was shown
	var ro rollout.Rollout
	if err := cl.post(ctx, "/api/rollouts", req, &ro); err != nil {
		return c.fail("rollout", err)
	}
	return c.printRollout(ro, names, *asJSON)
}

func (c *cli) rolloutStatus(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("rollout status", "rackboot rollout status [ID] [--json]")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("rollout", err)
	}
	names := c.hostNames(ctx, cl)
	if len(pos) > 0 {
		var ro rollout.Rollout
		if _, err := cl.get(ctx, "/api/rollouts/"+url.PathEscape(pos[0]), &ro); err != nil {
			return c.fail("rollout", err)
		}
		return c.printRollout(ro, names, *asJSON)
	}
	var all []rollout.Rollout
	b, err := cl.get(ctx, "/api/rollouts", &all)
	if err != nil {
		return c.fail("rollout", err)
	}
	if *asJSON {
		if err := writeJSON(c.stdout, b); err != nil {
			return c.fail("rollout", err)
		}
		return 0
	}
	if len(all) == 0 {
		fmt.Fprintln(c.stdout, "no rollouts")
		return 0
	}
	rows := [][]string{{"ID", "STATUS", "VERSION", "WAVE", "HOSTS", "INSTALLED", "FAILED", "UPDATED"}}
	for _, ro := range all {
		n := map[rollout.HostResult]int{}
		for _, h := range ro.Hosts {
			n[h.Result]++
		}
		rows = append(rows, []string{ro.ID, string(ro.Status), ro.Spec.Version, fmt.Sprintf("%d/%d", min(ro.Wave+1, len(ro.Waves)), len(ro.Waves)),
			strconv.Itoa(len(ro.Hosts)), strconv.Itoa(n[rollout.ResultInstalled]), strconv.Itoa(n[rollout.ResultFailed]), ro.Updated.In(c.loc).Format(time.DateTime)})
	}
	var sb strings.Builder
	table(&sb, "", rows)
	fmt.Fprint(c.stdout, sb.String())
	return 0
}

func (c *cli) rolloutControl(ctx context.Context, op string, args []string) int {
	fs, cf := c.flagSet("rollout "+op, "rackboot rollout "+op+" ID [--json]")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("rollout", err)
	}
	var ro rollout.Rollout
	if err := cl.post(ctx, "/api/rollouts/"+url.PathEscape(pos[0])+"/"+op, api.RolloutControl{By: c.user}, &ro); err != nil {
		return c.fail("rollout", err)
	}
	return c.printRollout(ro, c.hostNames(ctx, cl), *asJSON)
}

// hostNames maps MACs to hostnames, for tables; empty when the hosts
// cannot be read.
func (c *cli) hostNames(ctx context.Context, cl *adminClient) map[string]string {
	names := map[string]string{}
	if hs, _, err := cl.hosts(ctx, nil); err == nil {
		for _, h := range hs {
			names[h.MAC] = h.Hostname
		}
	}
	return names
}

func (c *cli) printRollout(ro rollout.Rollout, names map[string]string, asJSON bool) int {
	if asJSON {
		b, err := json.Marshal(ro)
		if err == nil {
			err = writeJSON(c.stdout, b)
		}
		if err != nil {
			return c.fail("rollout", err)
		}
		return 0
	}
	fmt.Fprint(c.stdout, rolloutText(ro, names, c.loc))
	return 0
}

// rolloutText shows a rollout: its status, each wave's hosts with their
// results, and its latest events.
func rolloutText(ro rollout.Rollout, names map[string]string, loc *time.Location) string {
	var b strings.Builder
	if ro.ID == "" {
		fmt.Fprintf(&b, "dry run: %s to %s in %d waves (nothing started)\n", machineCount(len(ro.Spec.Hosts)), ro.Spec.Version, len(ro.Waves))
	} else {
		fmt.Fprintf(&b, "rollout %s: %s, %s to %s, wave %d of %d\n", ro.ID, ro.Status, machineCount(len(ro.Hosts)), ro.Spec.Version, min(ro.Wave+1, len(ro.Waves)), len(ro.Waves))
	}
	if ro.Reason != "" {
		fmt.Fprintf(&b, "  %s\n", oneLine(ro.Reason))
	}
	rows := [][]string{{"WAVE", "MAC", "HOSTNAME", "RESULT", "ERROR"}}
	for i, w := range ro.Waves {
		for _, mac := range w {
			result, errText := "waiting", ""
			if h := ro.Host(mac); h != nil {
				result, errText = string(h.Result), h.Error
			}
			label := strconv.Itoa(i + 1)
			if i == 0 && ro.Spec.Canary > 0 {
				label += " (canary)"
			}
			rows = append(rows, []string{label, mac, orDash(names[mac]), result, orDash(oneLine(errText))})
		}
	}
	table(&b, "  ", rows)
	ev := ro.Events
	if len(ev) > 8 {
		ev = ev[len(ev)-8:]
	}
	for _, e := range ev {
		fmt.Fprintf(&b, "  %s %s\n", e.At.In(loc).Format("15:04:05"), e.Text)
	}
	return b.String()
}
