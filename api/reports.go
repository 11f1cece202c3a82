package api

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The agent's reports are untrusted input: an installer runs on a machine
// anyone with the install token (a string on a kernel command line, sent in
// clear over HTTP) can impersonate. Each decoder is strict (one JSON
// object, no unknown fields), bounds every value, and reduces text to what
// a terminal prints harmlessly. FuzzDecoders holds them to it.

// Limits of agent reports.
const (
	maxReportBytes = 16 << 10 // progress, done, failed
	maxLogBody     = 1 << 20  // one log batch
	maxLogLines    = 10000
	maxLineBytes   = 4096
	maxErrorBytes  = 4096
	maxPhaseBytes  = 32
)

// ProgressReport is the body of POST /api/agent/progress.
type ProgressReport struct {
	// Phase is what the agent is doing: a short lower-case word such as
	// "partition", "download", "write", "verify", "config".
	Phase string `json:"phase"`
	// Done and Total are bytes (Total 0: unknown).
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
	// Rate is bytes per second.
	Rate float64 `json:"rate"`
}

// LogReport is the body of POST /api/agent/log: a batch of lines.
type LogReport struct {
	Lines []string `json:"lines"`
}

// DoneReport is the body of POST /api/agent/done.
type DoneReport struct {
	// SHA256 is the hex digest of the image as the agent received it; it
	// must equal the plan's.
	SHA256 string `json:"sha256"`
	// Bytes is how much the agent wrote to the disk.
	Bytes      int64 `json:"bytes"`
	DurationMS int64 `json:"duration_ms"`
}

// FailedReport is the body of POST /api/agent/failed.
type FailedReport struct {
	Error string `json:"error"`
	Phase string `json:"phase,omitempty"`
}

// decodeStrict decodes exactly one JSON object into v.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("malformed JSON: data after the object")
	}
	return nil
}

func decodeProgress(b []byte) (ProgressReport, error) {
	var p ProgressReport
	if err := decodeStrict(b, &p); err != nil {
		return ProgressReport{}, err
	}
	if err := checkPhase(p.Phase, true); err != nil {
		return ProgressReport{}, err
	}
	if p.Done < 0 || p.Total < 0 {
		return ProgressReport{}, errors.New("done and total must not be negative")
	}
	if p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0) {
		return ProgressReport{}, errors.New("rate must be a finite number, not negative")
	}
	return p, nil
}

func decodeLog(b []byte) ([]string, error) {
	var l LogReport
	if err := decodeStrict(b, &l); err != nil {
		return nil, err
	}
	if len(l.Lines) > maxLogLines {
		return nil, fmt.Errorf("%d lines in one batch, at most %d", len(l.Lines), maxLogLines)
	}
	for i, line := range l.Lines {
		l.Lines[i] = printable(line, maxLineBytes)
	}
	return l.Lines, nil
}

func decodeDone(b []byte) (DoneReport, error) {
	var d DoneReport
	if err := decodeStrict(b, &d); err != nil {
		return DoneReport{}, err
	}
	if d.SHA256 != "" {
		if s, err := hex.DecodeString(d.SHA256); err != nil || len(s) != 32 {
			return DoneReport{}, errors.New("sha256: want 64 hexadecimal digits")
		}
		d.SHA256 = strings.ToLower(d.SHA256)
	}
	if d.Bytes < 0 || d.DurationMS < 0 {
		return DoneReport{}, errors.New("bytes and duration_ms must not be negative")
	}
	return d, nil
}

func decodeFailed(b []byte) (FailedReport, error) {
	var f FailedReport
	if err := decodeStrict(b, &f); err != nil {
		return FailedReport{}, err
	}
	if err := checkPhase(f.Phase, false); err != nil {
		return FailedReport{}, err
	}
	f.Error = strings.TrimSpace(printable(f.Error, maxErrorBytes))
	if f.Error == "" {
		return FailedReport{}, errors.New("error: missing")
	}
	return f, nil
}

// checkPhase accepts 1 to maxPhaseBytes of a-z, 0-9, "-" and "_".
func checkPhase(p string, required bool) error {
	if p == "" {
		if required {
			return errors.New("phase: missing")
		}
		return nil
	}
	if len(p) > maxPhaseBytes {
		return fmt.Errorf("phase: longer than %d bytes", maxPhaseBytes)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errors.New("phase: want lower-case letters, digits, - and _")
		}
	}
	return nil
}

// printable makes s safe to print on an admin's terminal: invalid UTF-8,
// control characters (escape sequences could rewrite the screen or the
// window title) and bidirectional overrides (which reorder what is shown)
// become U+FFFD, a tab stays, and s is cut to at most max bytes on a
// character boundary.
func printable(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		bidi := '\u202a' <= r && r <= '\u202e' || '\u2066' <= r && r <= '\u2069'
		if r == '\t' || !unicode.IsControl(r) && !bidi {
			return r
		}
		return '\uFFFD'
	}, s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
