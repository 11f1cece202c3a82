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

	"github.com/rackboot/rackboot/agentapi"
)

// The agent's reports are untrusted input: an installer runs on a machine
// anyone with the install token (a string on a kernel command line, sent in
// clear over HTTP) can impersonate. Each decoder is strict (one JSON
// object, no unknown fields), bounds every value, and reduces text to what
// a terminal prints harmlessly. FuzzDecoders holds them to it.

// The limits are agentapi's.
const (
	maxReportBytes = agentapi.MaxReportBytes
	maxLogBody     = agentapi.MaxLogBody
	maxLogLines    = agentapi.MaxLogLines
	maxLineBytes   = agentapi.MaxLineBytes
	maxErrorBytes  = agentapi.MaxErrorBytes
)

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

func decodeProgress(b []byte) (agentapi.Progress, error) {
	var p agentapi.Progress
	if err := decodeStrict(b, &p); err != nil {
		return agentapi.Progress{}, err
	}
	if err := checkPhase(p.Phase, true); err != nil {
		return agentapi.Progress{}, err
	}
	if p.Done < 0 || p.Total < 0 || p.Fetched < 0 || p.Reused < 0 {
		return agentapi.Progress{}, errors.New("done, total, fetched and reused must not be negative")
	}
	if p.FetchedPeers < 0 || p.FetchedPeers > p.Fetched {
		return agentapi.Progress{}, fmt.Errorf("fetched_peers %d must be between 0 and fetched %d", p.FetchedPeers, p.Fetched)
	}
	if p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0) {
		return agentapi.Progress{}, errors.New("rate must be a finite number, not negative")
	}
	return p, nil
}

func decodeLog(b []byte) (agentapi.Log, error) {
	var l agentapi.Log
	if err := decodeStrict(b, &l); err != nil {
		return agentapi.Log{}, err
	}
	if len(l.Lines) > maxLogLines {
		return agentapi.Log{}, fmt.Errorf("%d lines in one batch, at most %d", len(l.Lines), maxLogLines)
	}
	for i, line := range l.Lines {
		l.Lines[i] = printable(line, maxLineBytes)
	}
	return l, nil
}

func decodeDone(b []byte) (agentapi.Done, error) {
	var d agentapi.Done
	if err := decodeStrict(b, &d); err != nil {
		return agentapi.Done{}, err
	}
	if d.SHA256 != "" {
		if s, err := hex.DecodeString(d.SHA256); err != nil || len(s) != 32 {
			return agentapi.Done{}, errors.New("sha256: want 64 hexadecimal digits")
		}
		d.SHA256 = strings.ToLower(d.SHA256)
	}
	if d.Bytes < 0 || d.DurationMS < 0 || d.Written < 0 || d.Fetched < 0 || d.Reused < 0 {
		return agentapi.Done{}, errors.New("bytes, duration_ms, written, fetched and reused must not be negative")
	}
	if d.FetchedPeers < 0 || d.FetchedPeers > d.Fetched {
		return agentapi.Done{}, fmt.Errorf("fetched_peers %d must be between 0 and fetched %d", d.FetchedPeers, d.Fetched)
	}
	if d.Written > d.Bytes || d.Reused > d.Bytes {
		// Of an image of Bytes, no more can be written or reused.
		return agentapi.Done{}, fmt.Errorf("written %d and reused %d must not exceed bytes %d", d.Written, d.Reused, d.Bytes)
	}
	return d, nil
}

func decodeFailed(b []byte) (agentapi.Failed, error) {
	var f agentapi.Failed
	if err := decodeStrict(b, &f); err != nil {
		return agentapi.Failed{}, err
	}
	if err := checkPhase(f.Phase, false); err != nil {
		return agentapi.Failed{}, err
	}
	f.Error = strings.TrimSpace(printable(f.Error, maxErrorBytes))
	if f.Error == "" {
		return agentapi.Failed{}, errors.New("error: missing")
	}
	return f, nil
}

// checkPhase accepts one of agentapi.Phases, or "" when not required.
func checkPhase(p agentapi.Phase, required bool) error {
	switch {
	case p == "" && required:
		return errors.New("phase: missing")
	case p != "" && !p.Valid():
		return fmt.Errorf("phase %.32q: unknown, want one of %v", string(p), agentapi.Phases)
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
