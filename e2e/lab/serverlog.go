package lab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// LogEntry is one line of a server's JSON log, as log/slog's JSONHandler
// writes it: "time", "level", "msg", then attributes (groups nest).
type LogEntry struct {
	Time  time.Time
	Level string
	Msg   string
	Attrs map[string]any // everything but time, level and msg
	Raw   string         // the line as written
}

// Str returns attribute key as text, "" when absent. A dotted key reaches
// into groups: "req.path". Numbers and booleans are formatted with fmt.
func (e LogEntry) Str(key string) string {
	var v any = e.Attrs
	for part := range strings.SplitSeq(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		if v, ok = m[part]; !ok {
			return ""
		}
	}
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// ReadLog reads a JSON log file; see ParseLog.
func ReadLog(name string) ([]LogEntry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	return ParseLog(f)
}

// ParseLog decodes one JSON object per line. Lines that are not JSON
// objects with a time (a panic, output of a child process, a half-written
// last line) are skipped: the log is evidence, not input to validate.
func ParseLog(r io.Reader) ([]LogEntry, error) {
	var out []LogEntry
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1<<20)
	for s.Scan() {
		line := s.Text()
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		ts, _ := m["time"].(string)
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		e := LogEntry{Time: t, Raw: line, Attrs: m}
		e.Level, _ = m["level"].(string)
		e.Msg, _ = m["msg"].(string)
		delete(m, "time")
		delete(m, "level")
		delete(m, "msg")
		out = append(out, e)
	}
	if err := s.Err(); err != nil {
		return out, fmt.Errorf("lab: read log: %w", err)
	}
	return out, nil
}
