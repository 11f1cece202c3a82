package main

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	// Type is the event's "event" field; "message" when it has none.
	Type string
	// Data is its "data" lines, joined by newlines.
	Data string
	ID   string
}

// maxSSELine bounds one line of an event stream. The daemon's largest
// event, a log batch of 1 MiB of lines, fits with room to spare; a line
// beyond it ends the stream with bufio.ErrTooLong instead of eating memory.
const maxSSELine = 8 << 20

// sseReader parses an event stream (HTML Living Standard, section 9.2.6,
// "Interpreting an event stream"), ignoring comments and the retry field:
// the caller decides when to reconnect.
type sseReader struct {
	sc *bufio.Scanner
}

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	sc.Split(scanSSELines)
	return &sseReader{sc: sc}
}

// Next returns the next event. At the end of the stream it returns io.EOF
// (an event not terminated by a blank line is dropped, as the standard
// says), or the read error.
func (s *sseReader) Next() (sseEvent, error) {
	var ev sseEvent
	var data strings.Builder
	hasData := false
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(line) == 0 {
			if !hasData {
				ev = sseEvent{} // a comment or a block without data: no event
				continue
			}
			if ev.Type == "" {
				ev.Type = "message"
			}
			ev.Data = data.String()
			return ev, nil
		}
		if line[0] == ':' {
			continue // a comment: the heartbeat
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.Type = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID = string(value)
			}
		}
	}
	if err := s.sc.Err(); err != nil {
		return sseEvent{}, err
	}
	return sseEvent{}, io.EOF
}

// scanSSELines splits at CRLF, LF or CR, the three line ends the standard
// allows.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	for i, b := range data {
		switch b {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			if atEOF {
				return i + 1, data[:i], nil
			}
			return 0, nil, nil // a LF may follow
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
