package main

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rackboot/rackboot/bench/internal/result"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParsePerfdhcp(t *testing.T) {
	got, err := parsePerfdhcp(open(t, "perfdhcp.txt"), 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"sent": 1999, "received": 1999, "drops": 0, "drops_pct": 0, "rate_per_s": 799.592,
		"min_ms": 0.087, "avg_ms": 0.109, "max_ms": 2.015, "sent_per_s": 999.5, "offers_per_s": 999.5,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("perfdhcp (-want +got):\n%s", diff)
	}
	if _, err := parsePerfdhcp(strings.NewReader("perfdhcp: cannot open socket\n"), 2); err == nil {
		t.Error("a failed perfdhcp run parsed without error")
	}
}

func TestParseWrk(t *testing.T) {
	got, err := parseWrk(open(t, "wrk.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"requests": 4372, "req_per_s": 4372 / 2.097976, "mb_per_s": 4.839804 / 2.097976,
		"socket_errors": 0, "non2xx": 0, "p50_ms": 464.424, "p90_ms": 577.334, "p99_ms": 588.551,
		"max_ms": 600.455, "avg_ms": 422.7447,
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-9, 0)); diff != "" {
		t.Errorf("wrk (-want +got):\n%s", diff)
	}
	if _, err := parseWrk(strings.NewReader("Running 2s test @ http://x\n")); err == nil {
		t.Error("wrk output without the report script's lines parsed without error")
	}
}

func TestParseGoBench(t *testing.T) {
	got, err := parseGoBench(open(t, "gobench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []goBench{
		{"zstd", map[string]float64{"ns_per_op": 564550130, "direct_mb_per_s": 1350, "ratio_direct": 1.834, "ratio_stream": 0.4194, "shell_mb_per_s": 736.2, "stream_mb_per_s": 308.7}},
		{"raw", map[string]float64{"ns_per_op": 241064710, "direct_mb_per_s": 1221, "ratio_direct": 0.8002, "ratio_stream": 0.8232, "shell_mb_per_s": 1526, "stream_mb_per_s": 1257}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(goBench{})); diff != "" {
		t.Errorf("go test -bench (-want +got):\n%s", diff)
	}
}

func TestCheck(t *testing.T) {
	m := map[string]float64{"drops": 0, "received": 10}
	tests := []struct {
		conds   string
		wantErr string
	}{
		{"", ""},
		{"drops=0,received>0", ""},
		{"received<5", "received<5 (got 10)"},
		{"lost=0", "lost=0 (no such metric)"},
		{"drops", "want metric=v"},
	}
	for _, tt := range tests {
		t.Run(tt.conds, func(t *testing.T) {
			err := check(tt.conds, m, result.Tags{"server": "rackboot"})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("check(%q) = %v, want nil", tt.conds, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("check(%q) = %v, want an error with %q", tt.conds, err, tt.wantErr)
			}
		})
	}
}

// TestTable renders the table of a smoke run's records (golden file).
func TestTable(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"table", filepath.Join("testdata", "results.jsonl")}, nil, &out); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Errorf("table (-want +got), rerun with -update if intended:\n%s", diff)
	}
}

func TestFigure(t *testing.T) {
	tests := []struct {
		name string
		vs   []float64
		want string
	}{
		{"none", nil, "not run"},
		{"one", []float64{0.6312}, "0.631"},
		{"spread", []float64{119000, 117000, 120500}, "119k (117k–120k)"},
		{"equal", []float64{0, 0, 0}, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := figure(tt.vs).String(); got != tt.want {
				t.Errorf("figure(%v) = %q, want %q", tt.vs, got, tt.want)
			}
		})
	}
	if r := ratio(figure(nil), figure([]float64{1})); !math.IsNaN(r) {
		t.Errorf("ratio without data = %v, want NaN", r)
	}
}
