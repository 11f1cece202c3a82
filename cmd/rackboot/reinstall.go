package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rackboot/rackboot/api"
)

// runReinstall marks machines pending: each installs again at its next PXE
// boot. Nothing happens to a machine until it reboots, so --dry-run first
// is cheap and --selector with a typo names nothing rather than everything.
//
// A selection (--selector, --version-below) is previewed first with a dry
// run, whatever it matches, since its size is the server's to say: one
// that matches nothing exits 1; otherwise, unless --yes or --dry-run, the
// machines are listed and the question asked on stderr when stdin is a
// terminal, and the request refused (exit 2) when it is not: a script says
// --yes. After a yes, the request names the machines that were listed,
// not the selection again, so that exactly what was confirmed is marked.
// Machines named one by one are marked without a question.
func runReinstall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).reinstall(ctx, args)
}

func (c *cli) reinstall(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("reinstall", "rackboot reinstall MAC|HOSTNAME... | --selector KEY=VALUE | --version-below N\n"+
		"         [--reason TEXT] [--version NAME] [--wipe-data --reason TEXT] [--dry-run] [--json]\n"+
		"         [--power-cycle [--stagger DURATION] [--concurrency N] [--no-wait] [--timeout DURATION]]")
	var selectors []string
	fs.Var(&listFlag{list: &selectors}, "selector", "hosts with label `KEY=VALUE` (repeatable or comma-separated; all must hold)")
	below := fs.String("version-below", "", "hosts whose installed version `number` is below N; with --selector, both must hold")
	reason := fs.String("reason", "", "why, recorded with the request and each attempt it causes (e.g. a CVE)")
	version := fs.String("version", "", "install catalog version `name` instead of the profile's (a canary)")
	wipe := fs.Bool("wipe-data", false, "let the next install attempt destroy partitions earlier installs preserved\n"+
		"that the layout no longer keeps as they are (dropped, renamed, resized, no longer preserve: true);\n"+
		"without it the installer refuses such a layout. One attempt only; needs --reason")
	dryRun := fs.Bool("dry-run", false, "show which machines would be marked pending; change nothing")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	yes := fs.Bool("yes", false, "mark the machines --selector or --version-below matches without asking\n(required when stdin is not a terminal)")
	powerCycle := fs.Bool("power-cycle", false, "install now: set a one-time network boot and power-cycle each machine through its BMC\n(every machine needs a bmc in its profile), then follow the installs")
	stagger := fs.Duration("stagger", -1, "with --power-cycle: least `duration` between two machines' power cycles (default: the appliance's --power-stagger)")
	concurrency := fs.Int("concurrency", 0, "with --power-cycle: most `machines` handled at once (default: the appliance's --power-concurrency)")
	noWait := fs.Bool("no-wait", false, "with --power-cycle: return once the machines are cycled; do not follow the installs")
	timeout := fs.Duration("timeout", 30*time.Minute, "with --power-cycle: give up following the installs after this `duration` (exit 1)")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if *wipe && strings.TrimSpace(*reason) == "" {
		fmt.Fprintln(c.stderr, "rackboot reinstall: --wipe-data destroys preserved data: say why with --reason")
		return 2
	}
	req := api.ReinstallRequest{Reason: *reason, Version: *version, By: c.user, DryRun: *dryRun, WipeData: *wipe,
		PowerCycle: *powerCycle, Concurrency: *concurrency}
	if *stagger >= 0 {
		ms := stagger.Milliseconds()
		req.StaggerMS = &ms
	}
	for _, s := range selectors {
		for kv := range strings.SplitSeq(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				fmt.Fprintf(c.stderr, "rackboot reinstall: --selector %q: want KEY=VALUE\n", kv)
				return 2
			}
			if req.Selector == nil {
				req.Selector = map[string]string{}
			}
			req.Selector[k] = v
		}
	}
	if *below != "" {
		n, err := strconv.Atoi(*below)
		if err != nil {
			fmt.Fprintf(c.stderr, "rackboot reinstall: --version-below %q: want a version number\n", *below)
			return 2
		}
		req.VersionBelow = &n
	}
	if len(pos) == 0 && req.Selector == nil && req.VersionBelow == nil {
		fs.Usage()
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("reinstall", err)
	}
	// The hosts resolve hostnames, and name the machines in the answer.
	// They are read first: an error here has changed nothing.
	hs, _, err := cl.hosts(ctx, nil)
	if err != nil {
		return c.fail("reinstall", err)
	}
	byMAC := make(map[string]api.HostView, len(hs))
	for _, h := range hs {
		byMAC[h.MAC] = h
	}
	for _, arg := range pos {
		mac, err := findHost(hs, arg)
		if err != nil {
			return c.fail("reinstall", err)
		}
		req.MACs = append(req.MACs, mac)
	}
	var resp api.ReinstallResponse
	previewed := false
	if req.Selector != nil || req.VersionBelow != nil {
		var code int
		var ok bool
		if req, resp, code, ok = c.confirm(ctx, cl, req, byMAC, *yes, *asJSON); !ok {
			return code
		}
		previewed = true
	}
	if !previewed || !req.DryRun { // a dry run's answer is the preview's
		post := cl.post
		if req.PowerCycle && !req.DryRun {
			post = cl.postLong // paced over the machines: minutes
		}
		if err := post(ctx, "/api/reinstall", req, &resp); err != nil {
			return c.fail("reinstall", err)
		}
	}
	if code := c.printReinstall(req, resp, byMAC, *asJSON); code != 0 {
		return code
	}
	code := 0
	if len(resp.Skipped) > 0 {
		code = 1
	}
	if !req.PowerCycle || req.DryRun {
		return code
	}
	var cycled []string
	for _, p := range resp.Power {
		if p.OK {
			cycled = append(cycled, p.MAC)
		} else {
			code = 1
		}
	}
	if *noWait || len(cycled) == 0 {
		return code
	}
	if c.followInstalls(ctx, cl, cycled, *timeout, *asJSON) != 0 {
		code = 1
	}
	return code
}

// printReinstall prints the answer of a request, as text or JSON.
func (c *cli) printReinstall(req api.ReinstallRequest, resp api.ReinstallResponse, byMAC map[string]api.HostView, asJSON bool) int {
	if asJSON {
		b, err := json.Marshal(resp)
		if err == nil {
			err = writeJSON(c.stdout, b)
		}
		if err != nil {
			return c.fail("reinstall", err)
		}
		return 0
	}
	fmt.Fprint(c.stdout, reinstallText(req, resp, byMAC))
	if len(resp.Power) > 0 {
		fmt.Fprint(c.stdout, powerText(api.PowerRequest{Action: api.PowerCycle, NetBoot: true}, api.PowerResponse{Results: resp.Power}))
	}
	return 0
}

// confirm previews a selection with a dry run and, unless yes or the
// request is a dry run itself, asks. It returns the request to send (the
// confirmed machines by MAC after a question) and the preview; ok false
// means stop with code: 1 when nothing matches or the answer is no, 2
// when no one can be asked.
func (c *cli) confirm(ctx context.Context, cl *adminClient, req api.ReinstallRequest, byMAC map[string]api.HostView, yes, asJSON bool) (_ api.ReinstallRequest, _ api.ReinstallResponse, code int, ok bool) {
	preview := req
	preview.DryRun = true
	var pr api.ReinstallResponse
	if err := cl.post(ctx, "/api/reinstall", preview, &pr); err != nil {
		return req, pr, c.fail("reinstall", err), false
	}
	n := len(pr.Reinstalled)
	if n == 0 { // say what was done, then that it is an error
		if code := c.printReinstall(req, pr, byMAC, asJSON); code != 0 {
			return req, pr, code, false
		}
		fmt.Fprintln(c.stderr, "rackboot reinstall: the selection matches no machine")
		return req, pr, 1, false
	}
	if req.DryRun || yes {
		return req, pr, 0, true
	}
	if c.interactive == nil || !c.interactive() {
		fmt.Fprintf(c.stderr, "rackboot reinstall: the selection matches %s; stdin is not a terminal to ask: give --yes (--dry-run lists them)\n", machineCount(n))
		return req, pr, 2, false
	}
	fmt.Fprint(c.stderr, reinstallText(preview, pr, byMAC))
	fmt.Fprintf(c.stderr, "reinstall %s? [y/N] ", machineCount(n))
	answer, _ := bufio.NewReader(c.stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		fmt.Fprintln(c.stderr, "nothing changed")
		return req, pr, 1, false
	}
	req.MACs, req.Selector, req.VersionBelow = pr.Reinstalled, nil, nil
	return req, pr, 0, true
}

func machineCount(n int) string {
	if n == 1 {
		return "1 machine"
	}
	return strconv.Itoa(n) + " machines"
}

func reinstallText(req api.ReinstallRequest, resp api.ReinstallResponse, hosts map[string]api.HostView) string {
	var b strings.Builder
	n := len(resp.Reinstalled)
	machines := machineCount(n)
	switch {
	case n == 0 && req.DryRun:
		b.WriteString("dry run: no machine would be marked pending\n")
	case n == 0:
		b.WriteString("no machine marked pending\n")
	case req.DryRun:
		fmt.Fprintf(&b, "dry run: would mark %s pending (nothing changed)\n", machines)
	case req.PowerCycle:
		fmt.Fprintf(&b, "marked %s pending: each installs again now, cycled through its BMC\n", machines)
	default:
		fmt.Fprintf(&b, "marked %s pending: each installs again at its next PXE boot\n", machines)
	}
	if n > 0 && req.WipeData {
		b.WriteString("wipe data: that install may destroy the preserved partitions its layout no longer keeps as they are\n")
	}
	if n > 0 {
		rows := [][]string{{"MAC", "HOSTNAME", "RUNS", "INSTALLS"}}
		for _, mac := range resp.Reinstalled {
			h := hosts[mac]
			next := "-"
			switch {
			case req.Version != "":
				next = req.Version
			case h.ProfileVersion != nil:
				next = versionString(*h.ProfileVersion)
			}
			rows = append(rows, []string{mac, orDash(h.Hostname), versionString(h.Version), next})
		}
		table(&b, "  ", rows)
	}
	for _, s := range resp.Skipped {
		fmt.Fprintf(&b, "skipped %s: %s\n", s.MAC, oneLine(s.Reason))
	}
	return b.String()
}
