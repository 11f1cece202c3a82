package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func readSSE(r io.Reader) ([]sseEvent, error) {
	sr := newSSEReader(r)
	var out []sseEvent
	for {
		ev, err := sr.Next()
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []sseEvent
	}{
		{"daemon's events", ": rackboot events\n\nevent: state\ndata: {\"a\":1}\n\n: ping\n\nevent: progress\ndata: {}\n\n",
			[]sseEvent{{Type: "state", Data: `{"a":1}`}, {Type: "progress", Data: "{}"}}},
		{"CRLF and CR", "event: x\r\ndata: 1\r\n\r\nevent: y\rdata: 2\r\r",
			[]sseEvent{{Type: "x", Data: "1"}, {Type: "y", Data: "2"}}},
		{"default type, multi-line data, id", "id: 7\ndata: a\ndata:b\ndata\n\n",
			[]sseEvent{{Type: "message", Data: "a\nb\n", ID: "7"}}},
		{"no space after the colon", "event:x\ndata:1\n\n", []sseEvent{{Type: "x", Data: "1"}}},
		{"a block without data is no event", "event: x\n\nevent: y\ndata: 2\n\n", []sseEvent{{Type: "y", Data: "2"}}},
		{"unknown fields ignored", "retry: 10\nfoo: bar\ndata: 1\n\n", []sseEvent{{Type: "message", Data: "1"}}},
		{"an unterminated event is dropped", "event: x\ndata: 1\n\nevent: y\ndata: 2\n", []sseEvent{{Type: "x", Data: "1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time too: a CR at the end of a read must wait
			// for the next byte to know whether a LF follows.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				got, err := readSSE(r)
				if !errors.Is(err, io.EOF) {
					t.Errorf("end: %v, want io.EOF", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSSEReaderLongLine(t *testing.T) {
	in := "data: " + strings.Repeat("x", maxSSELine+1) + "\n\n"
	if _, err := readSSE(strings.NewReader(in)); errors.Is(err, io.EOF) || err == nil {
		t.Errorf("a line over %d bytes: %v, want an error", maxSSELine, err)
	}
}

// FuzzSSEReader: any stream parses without a panic, and whatever it
// yields, written back as events, reads back the same.
func FuzzSSEReader(f *testing.F) {
	f.Add(": hi\n\nevent: state\ndata: {}\n\n")
	f.Add("data: a\r\ndata: b\r\rid: 1\n\n")
	f.Add("event\ndata\n\n:\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		evs, err := readSSE(strings.NewReader(in))
		if !errors.Is(err, io.EOF) {
			t.Fatalf("end: %v", err)
		}
		var b strings.Builder
		for _, ev := range evs {
			if strings.ContainsAny(ev.Type, "\r\n") || strings.ContainsAny(ev.ID, "\r\n") {
				t.Fatalf("a field holds a line end: %q", ev)
			}
			b.WriteString("event: " + ev.Type + "\n")
			if ev.ID != "" {
				b.WriteString("id: " + ev.ID + "\n")
			}
			for l := range strings.SplitSeq(ev.Data, "\n") {
				b.WriteString("data: " + l + "\n")
			}
			b.WriteString("\n")
		}
		again, err := readSSE(strings.NewReader(b.String()))
		if !errors.Is(err, io.EOF) {
			t.Fatalf("end of the rewritten stream: %v", err)
		}
		if diff := cmp.Diff(evs, again); diff != "" {
			t.Errorf("rewritten stream (-first +again):\n%s", diff)
		}
	})
}
