package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// parsePerfdhcp reads perfdhcp's report of a DISCOVER/OFFER run (-i) of
// period seconds. perfdhcp prints no percentiles; its drops are DISCOVERs
// without an OFFER within -d (1 s).
func parsePerfdhcp(r io.Reader, period float64) (map[string]float64, error) {
	fields := map[string]*regexp.Regexp{
		"sent":       regexp.MustCompile(`^sent packets: (\d+)`),
		"received":   regexp.MustCompile(`^received packets: (\d+)`),
		"drops":      regexp.MustCompile(`^drops: (\d+)`),
		"drops_pct":  regexp.MustCompile(`^drops ratio: ([0-9.]+) %`),
		"rate_per_s": regexp.MustCompile(`^Rate: ([0-9.]+) `),
		"min_ms":     regexp.MustCompile(`^min delay: ([0-9.]+) ms`),
		"avg_ms":     regexp.MustCompile(`^avg delay: ([0-9.]+) ms`),
		"max_ms":     regexp.MustCompile(`^max delay: ([0-9.]+) ms`),
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		for k, re := range fields {
			if s := re.FindStringSubmatch(line); s != nil {
				v, err := strconv.ParseFloat(s[1], 64)
				if err != nil {
					return nil, fmt.Errorf("perfdhcp %s: %w", k, err)
				}
				m[k] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, k := range []string{"sent", "received", "drops"} {
		if _, ok := m[k]; !ok {
			return nil, fmt.Errorf("perfdhcp output has no %q line: did it run?", k)
		}
	}
	if _, ok := m["drops_pct"]; !ok {
		m["drops_pct"] = 0 // perfdhcp omits the ratio when nothing was sent
	}
	if period > 0 {
		m["sent_per_s"] = m["sent"] / period
		m["offers_per_s"] = m["received"] / period
	}
	return m, nil
}

// parseWrk reads the "rbbench KEY VALUE" lines that bench/wrk/report.lua's
// done() prints after wrk's own report.
func parseWrk(r io.Reader) (map[string]float64, error) {
	raw := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "rbbench" {
			continue
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, fmt.Errorf("wrk %s: %w", f[1], err)
		}
		raw[f[1]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if raw["duration_us"] <= 0 {
		return nil, errors.New("wrk output has no rbbench lines: was it run with -s bench/wrk/report.lua?")
	}
	secs := raw["duration_us"] / 1e6
	return map[string]float64{
		"requests":      raw["requests"],
		"req_per_s":     raw["requests"] / secs,
		"mb_per_s":      raw["bytes"] / 1e6 / secs,
		"socket_errors": raw["socket_errors"],
		"non2xx":        raw["non2xx"],
		"p50_ms":        raw["p50_us"] / 1e3,
		"p90_ms":        raw["p90_us"] / 1e3,
		"p99_ms":        raw["p99_us"] / 1e3,
		"max_ms":        raw["max_us"] / 1e3,
		"avg_ms":        raw["mean_us"] / 1e3,
	}, nil
}

// goBench is one result line of `go test -bench`.
type goBench struct {
	name    string // the sub-benchmark, e.g. "zstd" of BenchmarkStream/zstd-2
	metrics map[string]float64
}

var benchLine = regexp.MustCompile(`^Benchmark[^/\s]+/(\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// parseGoBench reads the sub-benchmark lines of `go test -bench` output.
// Units become metric names: "1234 shell-MB/s" is shell_mb_per_s, "ns/op"
// is ns_per_op, "ratio-direct" stays ratio_direct.
func parseGoBench(r io.Reader) ([]goBench, error) {
	var out []goBench
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		s := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if s == nil {
			continue
		}
		b := goBench{name: s[1], metrics: map[string]float64{}}
		f := strings.Fields(s[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark %s: %q: %w", b.name, f[i], err)
			}
			b.metrics[metricName(f[i+1])] = v
		}
		out = append(out, b)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no benchmark result lines in the go test output")
	}
	return out, nil
}

func metricName(unit string) string {
	u := strings.ToLower(unit)
	u = strings.ReplaceAll(u, "/s", "_per_s")
	u = strings.ReplaceAll(u, "/op", "_per_op")
	return strings.ReplaceAll(u, "-", "_")
}
