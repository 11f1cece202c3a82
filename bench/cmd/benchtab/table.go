package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/bench/internal/result"
)

// runs is a set of result records with the queries the table needs.
type runs []result.Record

// where keeps the records whose tags have every key=value pair given.
func (rs runs) where(kv ...string) runs {
	var out runs
next:
	for _, r := range rs {
		for i := 0; i+1 < len(kv); i += 2 {
			if r.Tags[kv[i]] != kv[i+1] {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// values returns a metric of every record that has it.
func (rs runs) values(metric string) []float64 {
	var out []float64
	for _, r := range rs {
		if v, ok := r.Metrics[metric]; ok {
			out = append(out, v)
		}
	}
	return out
}

// tagValues returns the distinct values of a tag, in numeric order when
// they are numbers.
func (rs runs) tagValues(key string) []string {
	set := map[string]bool{}
	for _, r := range rs {
		if v, ok := r.Tags[key]; ok {
			set[v] = true
		}
	}
	return slices.SortedFunc(maps.Keys(set), func(a, b string) int {
		x, errA := strconv.ParseFloat(a, 64)
		y, errB := strconv.ParseFloat(b, 64)
		if errA == nil && errB == nil {
			return cmp.Compare(x, y)
		}
		return strings.Compare(a, b)
	})
}

// onStore keeps the records of rackboot on registry store s (tag store,
// issue 18). For bolt it also keeps the records that name no store: the
// peers', and rackboot's from before the tag, which ran on bolt.
func (rs runs) onStore(s string) runs {
	var out runs
	for _, r := range rs {
		if st := r.Tags["store"]; st == s || s == "bolt" && st == "" {
			out = append(out, r)
		}
	}
	return out
}

// cpuPer returns, for every record that has the figures, the server's CPU
// time per unit of work (units: the metric counting answers, transfers or
// requests) in seconds × scale. CPU time spent is robust against other work
// on the machine in a way throughput is not: a server that waits for a
// core spends no CPU meanwhile. A store that runs apart from the server
// (etcd: store_cpu_pct) is counted with it, as bbolt's work is inside
// rackboot's process.
func (rs runs) cpuPer(units string, scale float64) []float64 {
	var out []float64
	for _, r := range rs {
		pct, ok1 := r.Metrics["server_cpu_pct"]
		secs, ok2 := r.Metrics["secs"]
		n := r.Metrics[units]
		if ok1 && ok2 && n > 0 {
			out = append(out, (pct+r.Metrics["store_cpu_pct"])/100*secs/n*scale)
		}
	}
	return out
}

// fig is a metric over repeated runs: the median and the range.
type fig struct {
	med, lo, hi float64
	n           int
}

func figure(vs []float64) fig {
	if len(vs) == 0 {
		return fig{med: math.NaN()}
	}
	return fig{med: result.Median(vs), lo: slices.Min(vs), hi: slices.Max(vs), n: len(vs)}
}

func (f fig) ok() bool { return f.n > 0 }

// String prints "median (min–max)" as bench/README.md does, or the value alone
// for one run or no spread.
func (f fig) String() string {
	if !f.ok() {
		return "not run"
	}
	if f.n == 1 || f.lo == f.hi {
		return num(f.med)
	}
	return fmt.Sprintf("%s (%s–%s)", num(f.med), num(f.lo), num(f.hi))
}

// num prints a figure with three significant digits, thousands as k.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 10000:
		return result.Format(v/1000) + "k"
	}
	return result.Format(v)
}

// row is one line of the table.
type row struct {
	id, what       string
	rackboot, peer string
	ratio          float64 // rackboot / peer; NaN when there is none
	goal           string
	met            string // "yes", "**no**" or "" when there is no goal or no data
}

// judge says whether v meets a goal, given whether it was measured.
func judge(measured, meets bool) string {
	switch {
	case !measured:
		return "not run"
	case meets:
		return "yes"
	}
	return "**no**"
}

func ratio(a, b fig) float64 {
	if !a.ok() || !b.ok() || b.med == 0 {
		return math.NaN()
	}
	return a.med / b.med
}

// writeTable prints the comparison table of every run in rs as Markdown.
func writeTable(w io.Writer, rs runs) error {
	var b strings.Builder
	if meta := rs.where("cmp", "meta"); len(meta) > 0 {
		m := meta[len(meta)-1].Tags
		fmt.Fprintf(&b, "rackboot bench, %s: %s cores (%s), Linux %s, load average %s at the start; rackboot %s\n",
			m["date"], m["cores"], m["cpu"], m["kernel"], m["load"], m["commit"])
		if m["peers"] != "" {
			fmt.Fprintf(&b, "peers: %s\n", m["peers"])
		}
		b.WriteString("\n")
	}
	b.WriteString("Figures: median (min–max) over the repetitions; ratio = rackboot / peer on the medians (for P4, the median of the per-run ratios).\n\n")
	b.WriteString("| # | measure | rackboot | peer | ratio | goal | met |\n|---|---|---|---|---|---|---|\n")
	var rows []row
	for _, f := range []func(runs) []row{p1Rows, p2Rows, p3Rows, p4Rows, p5Rows, storeRows, p8Rows, p9Rows} {
		rows = append(rows, f(rs)...)
	}
	for _, r := range rows {
		rt := "–"
		if !math.IsNaN(r.ratio) {
			rt = strconv.FormatFloat(r.ratio, 'f', 2, 64) + "×"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.id, cell(r.what), cell(r.rackboot), cell(r.peer), rt, r.goal, r.met)
	}
	writeNoise(&b, rs)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeNoise says how much CPU other work took while each comparison ran:
// the machine is shared, and a figure means little without it.
func writeNoise(b *strings.Builder, rs runs) {
	var parts []string
	for _, c := range []string{"P1", "P2", "P3", "P5"} {
		if f := figure(rs.where("cmp", c).values("others_pct")); f.ok() {
			parts = append(parts, fmt.Sprintf("%s %s (max %s)", c, num(f.med), num(f.hi)))
		}
	}
	if f := figure(rs.where("cmp", "P4").values("machine_busy_pct")); f.ok() {
		parts = append(parts, fmt.Sprintf("P4: the whole machine was %s %% busy (both cores = 200)", num(f.med)))
	}
	// P9's tools are not pinned and use both cores: other work is the
	// machine's busy time less the tool's and the HTTP server's CPU.
	var p9 []float64
	for _, r := range rs.where("cmp", "P9") {
		m := r.Metrics
		busy, ok := m["machine_busy_pct"]
		if secs := m["secs"]; ok && secs > 0 {
			p9 = append(p9, max(0, busy-(m["tool_cpu_s"]+m["server_cpu_s"])/secs*100))
		}
	}
	if f := figure(p9); f.ok() {
		parts = append(parts, fmt.Sprintf("P9 %s (max %s)", num(f.med), num(f.hi)))
	}
	if len(parts) > 0 {
		fmt.Fprintf(b, "\nCPU taken by other work during the runs, %% of one core, median per run: %s.\n", strings.Join(parts, "; "))
	}
}

// cell escapes the pipes of shell commands inside a table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// p1Rows: proxy-DHCP. Saturation is the best median offers/s over the
// rates tried; the 10k/s step gives drops and latency.
func p1Rows(all runs) []row {
	rs := all.where("cmp", "P1")
	if len(rs) == 0 {
		return nil
	}
	var rows []row
	for _, arch := range rs.where("tool", "perfdhcp").tagValues("arch") {
		sat := func(server string) (fig, string) {
			var best fig
			var at string
			srv := rs.where("tool", "perfdhcp", "arch", arch, "server", server)
			for _, rate := range srv.tagValues("rate") {
				f := figure(srv.where("rate", rate).values("offers_per_s"))
				if f.ok() && (!best.ok() || f.med > best.med) {
					best, at = f, rate
				}
			}
			return best, at
		}
		rb, rbAt := sat("rackboot")
		dn, dnAt := sat("dnsmasq")
		rows = append(rows, row{
			id: "P1", what: "proxyDHCP saturation, OFFERs/s (perfdhcp -i, " + arch + ", best rate)",
			rackboot: rb.String() + at(rbAt), peer: "dnsmasq quiet " + dn.String() + at(dnAt),
			ratio: ratio(rb, dn), goal: "≥ 1.0×", met: judge(rb.ok() && dn.ok(), ratio(rb, dn) >= 1),
		})
		perf := rs.where("tool", "perfdhcp", "arch", arch)
		rc, dc := figure(perf.where("server", "rackboot").cpuPer("received", 1e6)), figure(perf.where("server", "dnsmasq").cpuPer("received", 1e6))
		if rc.ok() {
			rows = append(rows, row{
				id: "P1", what: "server CPU per OFFER, µs (every perfdhcp run; lower is better, robust to other load)",
				rackboot: rc.String(), peer: "dnsmasq " + dc.String(), ratio: ratio(rc, dc),
			})
		}
		// Drops and latency at a fixed rate: 10k/s (the goal's), or the
		// lowest rate run when 10k/s was not.
		fixed := rs.where("tool", "perfdhcp", "arch", arch).tagValues("rate")
		if slices.Contains(fixed, "10000") {
			fixed = []string{"10000"}
		} else {
			fixed = fixed[:min(1, len(fixed))]
		}
		for _, rate := range fixed {
			q := func(server, metric string) fig {
				return figure(rs.where("tool", "perfdhcp", "arch", arch, "rate", rate, "server", server).values(metric))
			}
			rd, dd := q("rackboot", "drops"), q("dnsmasq", "drops")
			// Drops the kernel counted at the server's socket: a full
			// receive buffer, not a packet the server saw and skipped.
			rcvbuf := func(server string) string {
				if f := q(server, "server_rcvbuf_drops"); f.ok() {
					return ", of which receive-buffer overflows " + f.String()
				}
				return ""
			}
			rows = append(rows, row{
				id: "P1", what: "drops at " + rate + "/s (perfdhcp, " + arch + ")",
				rackboot: rd.String() + " (" + q("rackboot", "drops_pct").String() + " %)" + rcvbuf("rackboot"),
				peer:     "dnsmasq " + dd.String() + " (" + q("dnsmasq", "drops_pct").String() + " %)" + rcvbuf("dnsmasq"),
				ratio:    math.NaN(), goal: "0", met: judge(rd.ok(), rd.ok() && rd.med == 0),
			})
			ra, da := q("rackboot", "avg_ms"), q("dnsmasq", "avg_ms")
			rows = append(rows, row{
				id: "P1", what: "avg latency at " + rate + "/s, ms (perfdhcp, " + arch + ")",
				rackboot: ra.String(), peer: "dnsmasq " + da.String(), ratio: ratio(ra, da),
			})
		}
	}
	pl := rs.where("tool", "pxeload")
	for _, rate := range pl.tagValues("rate") {
		q := func(server, metric string) fig {
			return figure(pl.where("rate", rate, "server", server).values(metric))
		}
		ru, du := q("rackboot", "unanswered_pct"), q("dnsmasq", "unanswered_pct")
		rows = append(rows, row{
			id: "P1", what: "pxeload " + rate + "/s, broadcast, " + pl[0].Tags["clients"] + " MACs, BIOS+UEFI: unanswered %",
			rackboot: ru.String(), peer: "dnsmasq " + du.String(), ratio: math.NaN(),
			goal: "0", met: judge(ru.ok(), ru.ok() && ru.med == 0),
		})
		rp, dp := q("rackboot", "p99_ms"), q("dnsmasq", "p99_ms")
		rows = append(rows, row{
			id: "P1", what: "pxeload " + rate + "/s: p99 DISCOVER→OFFER, ms",
			rackboot: rp.String(), peer: "dnsmasq " + dp.String(), ratio: ratio(rp, dp),
		})
	}
	return rows
}

func at(rate string) string {
	if rate == "" {
		return ""
	}
	return " at -r " + rate
}

// p2Rows: TFTP storms. The goal compares rackboot's time with the faster
// peer's, and rackboot with loss with rackboot without.
func p2Rows(all runs) []row {
	rs := all.where("cmp", "P2")
	if len(rs) == 0 {
		return nil
	}
	var rows []row
	peers := []string{"hpa", "dnsmasq"}
	for _, file := range rs.tagValues("file") {
		for _, n := range rs.where("file", file).tagValues("n") {
			q := func(server, loss, metric string) fig {
				return figure(rs.where("file", file, "n", n, "server", server, "loss", loss).values(metric))
			}
			for _, loss := range []string{"0", "0.01"} {
				rb := q("rackboot", loss, "wall_s")
				if !rb.ok() {
					continue
				}
				var best fig
				var bestName string
				var peerText []string
				for _, p := range peers {
					f := q(p, loss, "wall_s")
					if !f.ok() {
						continue
					}
					peerText = append(peerText, p+" "+f.String())
					if !best.ok() || f.med < best.med {
						best, bestName = f, p
					}
				}
				failed := figure(rs.where("file", file, "n", n, "server", "rackboot", "loss", loss).values("failed"))
				what := fmt.Sprintf("TFTP storm %s × %s, blksize 1468: s until all done", n, file)
				rbText := rb.String() + fmt.Sprintf(", failed %s", num(failed.hi))
				if loss == "0" {
					rows = append(rows, row{
						id: "P2", what: what, rackboot: rbText, peer: strings.Join(peerText, "; "),
						ratio: ratio(rb, best), goal: "≤ 0.8× " + cmp.Or(bestName, "peer") + ", 0 failed",
						met: judge(best.ok(), ratio(rb, best) <= 0.8 && failed.hi == 0),
					})
					cpu := func(server string) fig {
						return figure(rs.where("file", file, "n", n, "server", server, "loss", loss).cpuPer("clients", 1e3))
					}
					if rc := cpu("rackboot"); rc.ok() {
						rows = append(rows, row{
							id: "P2", what: fmt.Sprintf("  … server CPU per transfer of %s, ms (lower is better)", file),
							rackboot: rc.String(), peer: "dnsmasq " + cpu("dnsmasq").String() + "; hpa forks a process per transfer: not measured",
							ratio: ratio(rc, cpu("dnsmasq")),
						})
					}
					continue
				}
				clean := q("rackboot", "0", "wall_s")
				rows = append(rows, row{
					id: "P2", what: what + ", 1 % loss each way", rackboot: rbText,
					peer:  strings.Join(peerText, "; ") + "; rackboot without loss " + clean.String(),
					ratio: ratio(rb, clean), goal: "≤ 2× own loss-free, 0 failed",
					met: judge(clean.ok(), ratio(rb, clean) <= 2 && failed.hi == 0),
				})
			}
		}
	}
	return rows
}

// p3Rows: HTTP, 64 MiB downloads and iPXE scripts.
func p3Rows(all runs) []row {
	rs := all.where("cmp", "P3").onStore("bolt")
	if len(rs) == 0 {
		return nil
	}
	q := func(test, server, metric string) fig {
		return figure(rs.where("test", test, "server", server).values(metric))
	}
	var rows []row
	if rb, ng := q("big", "rackboot", "mb_per_s"), q("big", "nginx", "mb_per_s"); rb.ok() {
		rows = append(rows, row{
			id: "P3", what: conns(rs, "big") + " concurrent 64 MiB downloads, MB/s", rackboot: rb.String(), peer: "nginx " + ng.String(),
			ratio: ratio(rb, ng), goal: "≥ 0.9×", met: judge(ng.ok(), ratio(rb, ng) >= 0.9),
		})
	}
	ng := q("tiny", "nginx", "req_per_s")
	if rb := q("script", "rackboot", "req_per_s"); rb.ok() {
		rows = append(rows, row{
			id: "P3", what: conns(rs, "script") + " connections of /ipxe?mac= (" + rs.where("test", "script")[0].Tags["hosts"] + " pending hosts, each script with its install token), req/s", rackboot: rb.String(),
			peer: "nginx tiny static " + ng.String(), ratio: ratio(rb, ng), goal: "≥ 0.5×", met: judge(ng.ok(), ratio(rb, ng) >= 0.5),
		})
		p99 := q("script", "rackboot", "p99_ms")
		rows = append(rows, row{
			id: "P3", what: "  … p99 latency, ms", rackboot: p99.String(), peer: "nginx " + q("tiny", "nginx", "p99_ms").String(),
			ratio: math.NaN(), goal: "≤ 10 ms", met: judge(p99.ok(), p99.med <= 10),
		})
		errs := q("script", "rackboot", "non2xx")
		rows = append(rows, row{
			id: "P3", what: "  … non-2xx answers + socket errors", rackboot: fmt.Sprintf("%s + %s", num(errs.hi), num(q("script", "rackboot", "socket_errors").hi)),
			peer: "nginx " + fmt.Sprintf("%s + %s", num(q("tiny", "nginx", "non2xx").hi), num(q("tiny", "nginx", "socket_errors").hi)), ratio: math.NaN(),
		})
	}
	if p99 := q("script100", "rackboot", "p99_ms"); p99.ok() {
		// Closed-loop load: latency is connections / rate (Little's law),
		// so at 1,000 connections on two cores no server reaches 10 ms;
		// fewer connections show the latency of a script itself.
		rows = append(rows, row{
			id: "P3", what: "  … at " + conns(rs, "script100") + " connections: p99 latency, ms (req/s)", rackboot: p99.String() + " (" + q("script100", "rackboot", "req_per_s").String() + ")",
			peer: "nginx tiny static " + q("tiny100", "nginx", "p99_ms").String() + " (" + q("tiny100", "nginx", "req_per_s").String() + ")", ratio: math.NaN(),
		})
	}
	if rb := q("bootipxe", "rackboot", "req_per_s"); rb.ok() {
		rows = append(rows, row{
			id: "P3", what: conns(rs, "bootipxe") + " connections of /boot.ipxe (one script for all, no state), req/s", rackboot: rb.String() + ", p99 " + q("bootipxe", "rackboot", "p99_ms").String() + " ms",
			peer: "nginx tiny static " + ng.String(), ratio: ratio(rb, ng),
		})
	}
	cpu := func(test, server string) fig {
		return figure(rs.where("test", test, "server", server).cpuPer("requests", 1e6))
	}
	nc := cpu("tiny", "nginx")
	for _, c := range []struct{ test, what string }{
		{"script", "/ipxe?mac="}, {"bootipxe", "/boot.ipxe"},
	} {
		if rc := cpu(c.test, "rackboot"); rc.ok() {
			rows = append(rows, row{
				id: "P3", what: "  … server CPU per request of " + c.what + ", µs (lower is better)",
				rackboot: rc.String(), peer: "nginx tiny static " + nc.String(), ratio: ratio(rc, nc),
			})
		}
	}
	return rows
}

// conns is the wrk connection count of a P3 test.
func conns(rs runs, test string) string {
	if r := rs.where("test", test); len(r) > 0 {
		return r[0].Tags["conns"]
	}
	return "?"
}

// p4Rows: image writes, from `go test -bench Stream ./imaging`.
func p4Rows(all runs) []row {
	rs := all.where("cmp", "P4")
	var rows []row
	for _, c := range []struct{ sub, shell, goal string }{
		{"zstd", "zstd -dc | dd bs=8M conv=fsync", "≥ 1.0×"},
		{"raw", "dd bs=8M conv=fsync", "≥ 0.95×"},
	} {
		r := rs.where("sub", c.sub)
		if len(r) == 0 {
			continue
		}
		direct, shell, ratioDirect := figure(r.values("direct_mb_per_s")), figure(r.values("shell_mb_per_s")), figure(r.values("ratio_direct"))
		limit := 1.0
		if c.sub == "raw" {
			limit = 0.95
		}
		size := r[0].Tags["size_mib"]
		rows = append(rows, row{
			id: "P4", what: fmt.Sprintf("write a %s MiB %s image + fsync, MB/s (imaging.Stream, O_DIRECT as the installer)", size, c.sub),
			rackboot: direct.String() + "; page cache " + figure(r.values("stream_mb_per_s")).String(),
			peer:     c.shell + " " + shell.String(), ratio: ratioDirect.med, goal: c.goal,
			met: judge(ratioDirect.ok(), ratioDirect.med >= limit),
		})
	}
	return rows
}

// p5Rows: agents reporting progress.
func p5Rows(all runs) []row {
	rs := all.where("cmp", "P5").onStore("bolt")
	if len(rs) == 0 {
		return nil
	}
	p99, lost := figure(rs.values("p99_ms")), figure(rs.values("lost"))
	agents := rs[0].Tags["agents"]
	return []row{
		{id: "P5", what: agents + " agents posting progress every second for " + rs[0].Tags["secs"] + " s: p99 ms", rackboot: p99.String() + ", max " + figure(rs.values("max_ms")).String(),
			peer: "–", ratio: math.NaN(), goal: "≤ 50 ms", met: judge(p99.ok(), p99.med <= 50)},
		{id: "P5", what: "  … reports lost (of " + num(figure(rs.values("reports")).med) + ")", rackboot: lost.String(),
			peer: "–", ratio: math.NaN(), goal: "0", met: judge(lost.ok(), lost.hi == 0)},
	}
}

// p9Rows: chunked images against casync (issue 14), from run.sh's P9:
// one record per timed run (case update, fresh, stream, stream-cache for
// rackboot; seed and inplace for casync) with served_bytes, what the
// counting HTTP server sent, and one per store built (import, make).
func p9Rows(all runs) []row {
	rs := all.where("cmp", "P9")
	if len(rs) == 0 {
		return nil
	}
	q := func(tool, c string) runs { return rs.where("tool", tool, "case", c) }
	mb := func(r runs, metric string) fig {
		vs := r.values(metric)
		for i := range vs {
			vs[i] /= 1e6
		}
		return figure(vs)
	}
	// rate is image MB per second of each run.
	rate := func(r runs) fig {
		var vs []float64
		for _, x := range r {
			if s := x.Metrics["secs"]; s > 0 {
				vs = append(vs, x.Metrics["image_bytes"]/1e6/s)
			}
		}
		return figure(vs)
	}
	pair := "a synthetic pair"
	if rs[0].Tags["pair"] == "debian" {
		pair = "debian-12.1 → 12.2 (+ jq)"
	}
	image := figure(rs.values("image_bytes"))
	zst := figure(rs.values("zst_bytes"))
	var rows []row
	up, seed, inpl := q("rackboot", "update"), q("casync", "seed"), q("casync", "inplace")
	if f := mb(up, "served_bytes"); f.ok() {
		cs := mb(seed, "served_bytes")
		pct := f.med * 1e6 / image.med * 100
		rows = append(rows, row{
			id: "P9", what: fmt.Sprintf("v1 → v2, %s, %s MB image: fetched over HTTP to put v2 over v1, MB", pair, num(image.med/1e6)),
			rackboot: fmt.Sprintf("%s (%s %% of the image, %s %% of its %s MB .zst)", f, num(pct), num(f.med*1e6/zst.med*100), num(zst.med/1e6)),
			peer:     "casync --seed=v1.img " + cs.String() + "; onto a copy of v1 " + mb(inpl, "served_bytes").String(),
			ratio:    ratio(f, cs), goal: "≤ 15 % of the image, ≤ 1.0× casync",
			met: judge(cs.ok(), pct <= 15 && ratio(f, cs) <= 1),
		})
		rows = append(rows, row{
			id: "P9", what: "  … chunks fetched (HTTP requests, indexes included)",
			rackboot: figure(up.values("requests")).String(), peer: "casync " + figure(seed.values("requests")).String(), ratio: math.NaN(),
		})
	}
	if f := figure(up.values("secs")); f.ok() {
		cs := figure(seed.values("secs"))
		rows = append(rows, row{
			id: "P9", what: "  … time to assemble v2 over v1 on a file, s (+ fsync)",
			rackboot: f.String(), peer: "casync --seed=v1.img into a new file " + cs.String() + "; onto a copy of v1 " + figure(inpl.values("secs")).String(),
			ratio: ratio(f, cs), goal: "≤ 1.0×", met: judge(cs.ok(), ratio(f, cs) <= 1),
		})
		rc, cc := figure(up.values("tool_cpu_s")), figure(seed.values("tool_cpu_s"))
		rows = append(rows, row{
			id: "P9", what: "  … CPU of the tool, s (lower is better)", rackboot: rc.String(),
			peer: "casync --seed " + cc.String() + "; onto a copy " + figure(inpl.values("tool_cpu_s")).String(), ratio: ratio(rc, cc),
		})
	}
	if f := rate(q("rackboot", "fresh")); f.ok() {
		st := rate(q("rackboot", "stream"))
		rows = append(rows, row{
			id: "P9", what: "fresh install of v2 onto an empty file, MB/s of image (+ fsync)",
			rackboot: "from chunks " + f.String(), peer: "imaging.Stream of v2.img.zst, O_DIRECT as the installer " + st.String() + "; page cache " + rate(q("rackboot", "stream-cache")).String(),
			ratio: ratio(f, st), goal: "≥ 0.9×", met: judge(st.ok(), ratio(f, st) >= 0.9),
		})
		ff, sf := mb(q("rackboot", "fresh"), "served_bytes"), mb(q("rackboot", "stream"), "served_bytes")
		rows = append(rows, row{
			id: "P9", what: "  … fetched, MB", rackboot: ff.String() + " (" + figure(q("rackboot", "fresh").values("requests")).String() + " requests)",
			peer: "the .zst " + sf.String(), ratio: ratio(ff, sf),
		})
	}
	if imp := rs.where("case", "import", "image", "v2"); len(imp) > 0 {
		mk := q("casync", "make")
		rows = append(rows, row{
			id: "P9", what: "  … chunking v2 into the store, s; stored MB",
			rackboot: fmt.Sprintf("chunkstore.Import %s; %s", figure(imp.values("secs")), mb(imp, "stored")),
			peer:     fmt.Sprintf("casync make %s; %s", figure(mk.values("secs")), mb(mk, "stored")),
			ratio:    ratio(figure(imp.values("secs")), figure(mk.values("secs"))),
		})
	}
	return rows
}
