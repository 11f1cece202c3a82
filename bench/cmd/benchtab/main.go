// Command benchtab turns the outputs of the bench's tools into result
// records (one JSON line per run) and the records into the comparison
// table of bench/README.md.
//
//	perfdhcp ... | benchtab perfdhcp -period 10 -tag cmp=P1 -tag server=dnsmasq >>results.jsonl
//	wrk -s bench/wrk/report.lua ... | benchtab wrk -tag cmp=P3 -tag test=big >>results.jsonl
//	go test -bench Stream ./imaging | benchtab gobench -tag cmp=P4 >>results.jsonl
//	benchtab record -tag cmp=meta -tag cores=2 >>results.jsonl
//	pxeload ... | benchtab json -m others_pct=12 -require lost=0 >>results.jsonl
//	benchtab table results.jsonl
//
// Every subcommand but table accepts -tag key=value and -m metric=value
// (repeatable), added to each record it writes, and -require, conditions
// on the record's metrics that make it exit 1 when one fails. json passes
// the records of the Go load generators through the same way.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/bench/internal/result"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchtab: %v\n", err)
		os.Exit(1)
	}
}

const usage = "usage: benchtab perfdhcp|wrk|gobench|json|record [-tag k=v]... [-m metric=v]... [-require conds] | benchtab table FILE..."

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	if cmd == "table" {
		var all runs
		for _, name := range args {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			rs, err := result.Read(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			all = append(all, rs...)
		}
		if len(args) == 0 {
			rs, err := result.Read(stdin)
			if err != nil {
				return err
			}
			all = rs
		}
		return writeTable(stdout, all)
	}

	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	tags, extra := result.Tags{}, metricsFlag{}
	fs.Var(tags, "tag", "`key=value` tag of the record (repeatable)")
	fs.Var(extra, "m", "`metric=value` added to the record (repeatable)")
	period := fs.Float64("period", 0, "perfdhcp: the run's -p, in seconds, for per-second rates")
	require := fs.String("require", "", "comma-separated `conditions` on the record's metrics (metric=v, metric>v, metric<v); exit 1 when one fails")
	if err := fs.Parse(args); err != nil {
		return err
	}
	write := func(m map[string]float64, more result.Tags) error {
		t := result.Tags{}
		for k, v := range tags {
			t[k] = v
		}
		for k, v := range more {
			t[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		if err := result.Write(stdout, result.Record{Tags: t, Metrics: m}); err != nil {
			return err
		}
		return check(*require, m, t)
	}
	switch cmd {
	case "perfdhcp":
		m, err := parsePerfdhcp(stdin, *period)
		if err != nil {
			return err
		}
		return write(m, nil)
	case "wrk":
		m, err := parseWrk(stdin)
		if err != nil {
			return err
		}
		return write(m, nil)
	case "gobench":
		bs, err := parseGoBench(stdin)
		if err != nil {
			return err
		}
		for _, b := range bs {
			if err := write(b.metrics, result.Tags{"sub": b.name}); err != nil {
				return err
			}
		}
		return nil
	case "record":
		return write(map[string]float64{}, nil)
	case "json":
		rs, err := result.Read(stdin)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return errors.New("json: no record on stdin: the load generator wrote none")
		}
		for _, r := range rs {
			if err := write(r.Metrics, r.Tags); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown subcommand %q\n%s", cmd, usage)
}

// check tests the -require conditions against a record's metrics.
func check(conds string, m map[string]float64, tags result.Tags) error {
	if conds == "" {
		return nil
	}
	var failed []string
	for c := range strings.SplitSeq(conds, ",") {
		i := strings.IndexAny(c, "=<>")
		if i <= 0 {
			return fmt.Errorf("-require %q: want metric=v, metric>v or metric<v", c)
		}
		name, op := c[:i], c[i]
		want, err := strconv.ParseFloat(c[i+1:], 64)
		if err != nil {
			return fmt.Errorf("-require %q: %w", c, err)
		}
		got, ok := m[name]
		pass := ok && (op == '=' && got == want || op == '<' && got < want || op == '>' && got > want)
		if !pass {
			if !ok {
				failed = append(failed, fmt.Sprintf("%s (no such metric)", c))
			} else {
				failed = append(failed, fmt.Sprintf("%s (got %v)", c, got))
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("FAIL: %s: %s", tags, strings.Join(failed, "; "))
	}
	return nil
}

// metricsFlag is a repeatable -m metric=value flag.
type metricsFlag map[string]float64

func (m metricsFlag) String() string { return fmt.Sprint(map[string]float64(m)) }

func (m metricsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	f, err := strconv.ParseFloat(v, 64)
	if !ok || k == "" || err != nil {
		return fmt.Errorf("-m %q: want metric=number", s)
	}
	m[k] = f
	return nil
}
