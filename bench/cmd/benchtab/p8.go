package main

import (
	"fmt"
	"math"
)

// p8Rows: peer distribution (issue 15), from run.sh's P8: one record per
// wave (tags peers on|off, n, rate, agent_rate, rep) with wall_s (agents'
// start to the last recorded success), tx_bytes (what the appliance's link
// sent), stored_bytes (the image's chunks: what one empty disk fetches),
// image_bytes, installed, peer_bytes (what the agents report they took
// from peers) and agent_cpu_per_install_s. Waves of one machine (n=1) are
// the "alone" each N is compared with, in the same mode and at the same
// link rate. "rackboot" is peers on, "peer" is peers off.
func p8Rows(all runs) []row {
	rs := all.where("cmp", "P8")
	if len(rs) == 0 {
		return nil
	}
	var rows []row
	for _, rate := range rs.tagValues("rate") {
		for _, arate := range rs.where("rate", rate).tagValues("agent_rate") {
			rows = append(rows, p8RateRows(rs.where("rate", rate, "agent_rate", arate), rate, arate)...)
		}
	}
	return rows
}

func p8RateRows(rs runs, rate, arate string) []row {
	link := "appliance link " + rate
	if arate != "none" && arate != "" {
		link += ", agents' links " + arate
	}
	stored := figure(rs.values("stored_bytes")).med
	image := figure(rs.values("image_bytes")).med
	mode := func(n, peers string) runs { return rs.where("n", n, "peers", peers) }
	alone := map[string]fig{"on": figure(mode("1", "on").values("wall_s")), "off": figure(mode("1", "off").values("wall_s"))}
	times := func(f, base fig) string {
		if !f.ok() {
			return "not run"
		}
		if !base.ok() || base.med == 0 {
			return f.String()
		}
		return fmt.Sprintf("%s (%s× alone)", f, num(f.med/base.med))
	}
	mbOf := func(r runs) fig {
		vs := r.values("tx_bytes")
		for i := range vs {
			vs[i] /= 1e6
		}
		return figure(vs)
	}
	imgs := func(f fig) string {
		if !f.ok() {
			return "not run"
		}
		return fmt.Sprintf("%s (%s× the stored image)", f, num(f.med*1e6/stored))
	}
	// A mode the run left out (smoke.sh runs peers on only) shows as "–",
	// not as "not run".
	ran := map[string]bool{}
	for _, p := range rs.tagValues("peers") {
		ran[p] = true
	}
	cell := func(peers, s string) string {
		if !ran[peers] {
			return "–"
		}
		return s
	}
	var rows []row
	if on, off := alone["on"], alone["off"]; on.ok() || off.ok() {
		rows = append(rows, row{
			id: "P8", what: fmt.Sprintf("one install alone, %s MB image (%s MB of chunks stored), %s: s until installed", num(image/1e6), num(stored/1e6), link),
			rackboot: cell("on", "peers on "+on.String()), peer: cell("off", "peers off "+off.String()), ratio: ratio(on, off),
		})
		ma, mb := mbOf(mode("1", "on")), mbOf(mode("1", "off"))
		rows = append(rows, row{
			id: "P8", what: "  … the appliance sent, MB", rackboot: cell("on", imgs(ma)), peer: cell("off", imgs(mb)), ratio: ratio(ma, mb),
		})
	}
	for _, n := range rs.tagValues("n") {
		if n == "1" {
			continue
		}
		on, off := mode(n, "on"), mode(n, "off")
		won, woff := figure(on.values("wall_s")), figure(off.values("wall_s"))
		r := row{
			id: "P8", what: fmt.Sprintf("%s installs at once, %s: s until all installed", n, link),
			rackboot: cell("on", "peers on "+times(won, alone["on"])), peer: cell("off", "peers off "+times(woff, alone["off"])), ratio: ratio(won, woff),
		}
		big := n == "100"
		if big {
			r.goal = "on ≤ 1.5× alone"
			r.met = judge(won.ok() && alone["on"].ok(), won.med <= 1.5*alone["on"].med)
		}
		rows = append(rows, r)
		bon, boff := mbOf(on), mbOf(off)
		r = row{id: "P8", what: "  … the appliance sent, MB", rackboot: cell("on", imgs(bon)), peer: cell("off", imgs(boff)), ratio: ratio(bon, boff)}
		if big {
			r.goal = "on ≤ 2× the image"
			r.met = judge(bon.ok(), bon.med*1e6 <= 2*stored)
		}
		rows = append(rows, r)
		rows = append(rows, row{
			id: "P8", what: "  … installed (of " + n + "); MB the agents took from peers",
			rackboot: cell("on", fmt.Sprintf("%s; %s", figure(on.values("installed")), mbFig(on, "peer_bytes"))),
			peer:     cell("off", fmt.Sprintf("%s; %s", figure(off.values("installed")), mbFig(off, "peer_bytes"))), ratio: math.NaN(),
		})
		rows = append(rows, row{
			id: "P8", what: "  … CPU of the agents per install, s; the machine busy, % (2 cores = 200)",
			rackboot: cell("on", fmt.Sprintf("%s; %s", figure(on.values("agent_cpu_per_install_s")), figure(on.values("machine_busy_pct")))),
			peer:     cell("off", fmt.Sprintf("%s; %s", figure(off.values("agent_cpu_per_install_s")), figure(off.values("machine_busy_pct")))),
			ratio:    ratio(figure(on.values("agent_cpu_per_install_s")), figure(off.values("agent_cpu_per_install_s"))),
		})
	}
	if alone["on"].ok() || alone["off"].ok() {
		rows = append(rows, row{
			id: "P8", what: "  … CPU of one install alone, s (the agent's user + system)",
			rackboot: cell("on", "peers on "+figure(mode("1", "on").values("agent_cpu_per_install_s")).String()),
			peer:     cell("off", "peers off "+figure(mode("1", "off").values("agent_cpu_per_install_s")).String()), ratio: math.NaN(),
		})
	}
	return rows
}

// mbFig is a byte metric's figure in MB, "–" when no record has it.
func mbFig(rs runs, metric string) string {
	vs := rs.values(metric)
	if len(vs) == 0 {
		return "–"
	}
	for i := range vs {
		vs[i] /= 1e6
	}
	return figure(vs).String()
}
