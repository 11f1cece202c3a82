package result

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRoundTrip(t *testing.T) {
	in := []Record{
		{Tags: map[string]string{"cmp": "P1", "server": "rackboot"}, Metrics: map[string]float64{"sent": 10, "p99_ms": 0.5}},
		{Tags: map[string]string{"cmp": "P2"}, Metrics: map[string]float64{"wall_s": 0.6}},
	}
	var buf bytes.Buffer
	for _, r := range in {
		if err := Write(&buf, r); err != nil {
			t.Fatal(err)
		}
	}
	// NaN and Inf are left out, not written as invalid JSON.
	if err := Write(&buf, Record{Tags: map[string]string{"cmp": "P3"}, Metrics: map[string]float64{"rate": math.NaN(), "x": math.Inf(1), "ok": 1}}); err != nil {
		t.Fatal(err)
	}
	in = append(in, Record{Tags: map[string]string{"cmp": "P3"}, Metrics: map[string]float64{"ok": 1}})
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if _, err := Read(strings.NewReader("{}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Read of a bad line = %v, want an error naming line 2", err)
	}
}

func TestTags(t *testing.T) {
	tags := Tags{}
	for _, s := range []string{"server=rackboot", "case=a=b"} {
		if err := tags.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(Tags{"server": "rackboot", "case": "a=b"}, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if err := tags.Set("novalue"); err == nil {
		t.Error("Set(novalue) = nil, want an error")
	}
}

func TestStatistics(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"p50 of 1..10", Percentile(ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50), 5 * time.Millisecond},
		{"p99 of 1..10", Percentile(ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99), 10 * time.Millisecond},
		{"p100 is the max", Percentile(ms(1, 7), 100), 7 * time.Millisecond},
		{"no samples", Percentile(nil, 99), time.Duration(0)},
		{"odd median", Median([]float64{3, 1, 2}), 2.0},
		{"even median", Median([]float64{4, 1, 3, 2}), 2.5},
		{"format small", Format(0.05634), "0.0563"},
		{"format mid", Format(56.34), "56.3"},
		{"format large", Format(56340.4), "56340"},
		{"format NaN", Format(math.NaN()), "–"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}
