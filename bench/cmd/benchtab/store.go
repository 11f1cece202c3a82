package main

import (
	"fmt"
	"math"
)

// storeRows: rackboot on each registry store other than bbolt (issue 18),
// beside bbolt in the same run, from run.sh's STORES: P5's agents and P3's
// script rate. Records carry the tags store (bolt, etcd, etcd3) and
// store_members, and store_cpu_pct, the etcd members' CPU. "rackboot" is
// the store, "peer" is bbolt, the ratio store / bbolt. The row's # is the
// comparison and the store ("P5 etcd"), so that the bbolt rows above stay
// as they were.
func storeRows(all runs) []row {
	var rows []row
	for _, st := range all.where("server", "rackboot").tagValues("store") {
		if st == "bolt" {
			continue
		}
		rows = append(rows, storeP5Rows(all, st)...)
		rows = append(rows, storeP3Rows(all, st)...)
	}
	return rows
}

// storeName says what a store was: "etcd, 1 member".
func storeName(rs runs, st string) string {
	m := rs[0].Tags["store_members"]
	switch m {
	case "", "0":
		return st
	case "1":
		return "etcd, 1 member"
	}
	return "etcd, " + m + " members"
}

func storeP5Rows(all runs, st string) []row {
	p5 := all.where("cmp", "P5")
	s, b := p5.onStore(st), p5.onStore("bolt")
	if len(s) == 0 {
		return nil
	}
	id := "P5 " + st
	q := func(rs runs, metric string) fig { return figure(rs.values(metric)) }
	sp99, bp99 := q(s, "p99_ms"), q(b, "p99_ms")
	sp50, bp50 := q(s, "p50_ms"), q(b, "p50_ms")
	slost, blost := q(s, "lost"), q(b, "lost")
	sc, bc := figure(s.cpuPer("answered", 1e6)), figure(b.cpuPer("answered", 1e6))
	ss, bs := q(s, "setup_s"), q(b, "setup_s")
	return []row{
		{id: id, what: fmt.Sprintf("%s agents posting progress every second for %s s, rackboot on %s (bbolt in the same run): p99 ms",
			s[0].Tags["agents"], s[0].Tags["secs"], storeName(s, st)),
			rackboot: sp99.String() + ", max " + q(s, "max_ms").String(), peer: "bbolt " + bp99.String() + ", max " + q(b, "max_ms").String(),
			ratio: ratio(sp99, bp99), goal: "≤ 50 ms", met: judge(sp99.ok(), sp99.med <= 50)},
		{id: id, what: "  … p50 ms", rackboot: sp50.String(), peer: "bbolt " + bp50.String(), ratio: ratio(sp50, bp50)},
		{id: id, what: "  … reports lost (of " + num(q(s, "reports").med) + ")", rackboot: slost.String(), peer: "bbolt " + blost.String(),
			ratio: math.NaN(), goal: "0", met: judge(slost.ok(), slost.hi == 0)},
		{id: id, what: "  … CPU of rackboot and its store per report, setup included, µs (lower is better)",
			rackboot: sc.String(), peer: "bbolt " + bc.String(), ratio: ratio(sc, bc)},
		{id: id, what: "  … setup of every agent (script, then plan: a write), s", rackboot: ss.String(), peer: "bbolt " + bs.String(), ratio: ratio(ss, bs)},
	}
}

func storeP3Rows(all runs, st string) []row {
	p3 := all.where("cmp", "P3", "test", "script", "server", "rackboot")
	s, b := p3.onStore(st), p3.onStore("bolt")
	if len(s) == 0 {
		return nil
	}
	id := "P3 " + st
	q := func(rs runs, metric string) fig { return figure(rs.values(metric)) }
	sr, br := q(s, "req_per_s"), q(b, "req_per_s")
	sp, bp := q(s, "p99_ms"), q(b, "p99_ms")
	sc, bc := figure(s.cpuPer("requests", 1e6)), figure(b.cpuPer("requests", 1e6))
	errs := func(rs runs) string {
		return fmt.Sprintf("%s + %s", num(q(rs, "non2xx").hi), num(q(rs, "socket_errors").hi))
	}
	return []row{
		{id: id, what: fmt.Sprintf("%s connections of /ipxe?mac= (%s pending hosts), rackboot on %s (bbolt in the same run), req/s",
			s[0].Tags["conns"], s[0].Tags["hosts"], storeName(s, st)),
			rackboot: sr.String(), peer: "bbolt " + br.String(), ratio: ratio(sr, br)},
		{id: id, what: "  … p99 latency, ms", rackboot: sp.String(), peer: "bbolt " + bp.String(), ratio: ratio(sp, bp)},
		{id: id, what: "  … non-2xx answers + socket errors", rackboot: errs(s), peer: "bbolt " + errs(b), ratio: math.NaN()},
		{id: id, what: "  … CPU of rackboot and its store per script, µs (lower is better)",
			rackboot: sc.String(), peer: "bbolt " + bc.String(), ratio: ratio(sc, bc)},
	}
}
