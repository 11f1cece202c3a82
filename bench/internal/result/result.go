// Package result is what the benchmark tools write and benchtab reads: one
// JSON object per line, a measured run with the tags that say what was
// measured (comparison, server, case, repetition) and its metrics.
//
// Keeping every run as its own line, instead of a summary, lets the table
// be recomputed (medians, ranges) from the raw figures at any time.
package result

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Record is one measured run.
type Record struct {
	// Tags say what was measured: cmp (P1..P5), server, case, rep, ...
	Tags map[string]string `json:"tags"`
	// Metrics are the figures, in the units their names end with
	// (_s, _ms, _pct, _per_s, mb_per_s; plain counts otherwise).
	Metrics map[string]float64 `json:"metrics"`
}

// Write writes r as one line of JSON. Metrics that are not finite (a rate
// over an empty window) are left out: JSON has no NaN.
func Write(w io.Writer, r Record) error {
	m := make(map[string]float64, len(r.Metrics))
	for k, v := range r.Metrics {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			m[k] = v
		}
	}
	b, err := json.Marshal(Record{Tags: r.Tags, Metrics: m})
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Read reads every record of a results file. Blank lines are skipped; a
// line that is not a record is an error naming its number.
func Read(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("result: line %d: %w", n, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// Tags is a repeatable -tag key=value flag.
type Tags map[string]string

func (t Tags) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(t)) {
		parts = append(parts, k+"="+t[k])
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (t Tags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("tag %q: want key=value", s)
	}
	t[k] = v
	return nil
}

// Percentile returns the p-th percentile (0-100) of sorted durations by
// the nearest-rank method, or 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Ms is a duration in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Median returns the median of vs (the mean of the middle two for an even
// count), or NaN for none.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Format prints v with three significant digits, the way bench/README.md does
// (0.0563, 5.63, 56.3), and whole numbers from 100 up (563, 56300).
func Format(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
