package api

import (
	"flag"
	"math"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/rackboot/rackboot/agentapi"
)

// checkText holds decoded text to what printable promises.
func checkText(t *testing.T, what, s string, max int) {
	if len(s) > max {
		t.Errorf("%s: %d bytes, limit %d", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		t.Errorf("%s: invalid UTF-8 %q", what, s)
	}
	for _, r := range s {
		if r != '\t' && unicode.IsControl(r) || r == '\u202e' {
			t.Errorf("%s: control character %U in %q", what, r, s)
		}
	}
}

func checkPhaseOut(t *testing.T, p agentapi.Phase) {
	if err := checkPhase(p, false); err != nil {
		t.Errorf("decoded phase %q fails its own check: %v", p, err)
	}
}

// FuzzDecoders feeds every agent report decoder the same bytes: none may
// panic, and whatever one accepts must be within its bounds.
//
// Issue 13 measured 220 executions in a default 60 s run: the go command
// gives each input that finds new coverage up to 60 s of minimizing, in
// O(n²) executions of an input of n bytes, and the decoders take bodies up
// to agentapi.MaxLogBody, so one long mutant could take the whole run (the
// stall of profiles' FuzzLoad). As there, inputs over fuzzMax bytes are
// skipped (a batch of maxLogLines+1 empty lines, 30 KB, still fits) and a run that
// sets no -fuzzminimizetime spends at most fuzzMinimize on one input.
func FuzzDecoders(f *testing.F) {
	for _, s := range []string{
		`{"phase":"image","done":1,"total":2,"rate":0.5}`,
		`{"lines":["a","b\u001b[31m","\u202egnp.exe"]}`,
		`{"sha256":"` + strings.Repeat("Ab", 32) + `","bytes":1,"duration_ms":2}`,
		`{"error":"EIO\n\u0000","phase":"disk"}`,
		`{"phase":"image","rate":1e309}`,
		`{"lines":["\xff\xfe"]}`,
		`{"error":"x"} {}`,
		`{"image":"` + strings.Repeat("ab", 32) + `","port":8090,"have":"gA==","failed":[{"peer":"http://10.0.0.1:8090","bad":true}]}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	if fl := flag.Lookup("test.fuzzminimizetime"); fl != nil && !flagSet("test.fuzzminimizetime") {
		if err := fl.Value.Set(fuzzMinimize); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMax {
			return
		}
		if p, err := decodeProgress(b); err == nil {
			checkPhaseOut(t, p.Phase)
			if p.Phase == "" || p.Done < 0 || p.Total < 0 || p.Fetched < 0 || p.Reused < 0 || !(p.Rate >= 0) || math.IsInf(p.Rate, 0) {
				t.Errorf("progress accepted: %+v", p)
			}
		}
		if l, err := decodeLog(b); err == nil {
			if len(l.Lines) > maxLogLines {
				t.Errorf("%d lines accepted", len(l.Lines))
			}
			for _, l := range l.Lines {
				checkText(t, "log line", l, maxLineBytes)
			}
		}
		if d, err := decodeDone(b); err == nil {
			if d.SHA256 != "" && (len(d.SHA256) != 64 || strings.ToLower(d.SHA256) != d.SHA256) || d.Bytes < 0 || d.DurationMS < 0 ||
				d.Written < 0 || d.Fetched < 0 || d.Reused < 0 || d.Written > d.Bytes || d.Reused > d.Bytes {
				t.Errorf("done accepted: %+v", d)
			}
		}
		if h, err := decodeHoldings(b); err == nil {
			if len(h.Image) != 64 || h.Port < 0 || h.Port > 65535 || len(h.Have) > maxBitmapBytes || len(h.Failed) > agentapi.MaxPeerFailures {
				t.Errorf("holdings accepted: image %q, port %d, %d bitmap bytes, %d failures", h.Image, h.Port, len(h.Have), len(h.Failed))
			}
			for _, f := range h.Failed {
				if !strings.HasPrefix(f.Peer, "http://") || len(f.Peer) > 64 {
					t.Errorf("peer accepted: %q", f.Peer)
				}
			}
		}
		if fr, err := decodeFailed(b); err == nil {
			checkPhaseOut(t, fr.Phase)
			checkText(t, "error", fr.Error, maxErrorBytes)
			if fr.Error == "" {
				t.Error("failed report without error accepted")
			}
		}
	})
}

// fuzzMax is the largest input FuzzDecoders tries, and fuzzMinimize its
// budget for minimizing one new input.
const (
	fuzzMax      = 32 << 10
	fuzzMinimize = "3s"
)

// flagSet reports whether the command line set the flag name.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain\ttab", 100, "plain\ttab"},
		{"\x1b[2J\x07bell", 100, "\ufffd[2J\ufffdbell"},
		{"\xffbad", 100, "\ufffdbad"},
		{"rtl \u202eexe.txt", 100, "rtl \ufffdexe.txt"},
		{"\u0085nel", 100, "\ufffdnel"},
		{"ééé", 5, "éé"},
	}
	for _, tt := range tests {
		if got := printable(tt.in, tt.max); got != tt.want {
			t.Errorf("printable(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
