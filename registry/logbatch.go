package registry

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Every store keeps a log as batches, one stored value per AppendLog, so an
// append writes only its own lines and the oldest batches can be dropped
// whole. These helpers (for Store implementations) give every store the
// same encoding and bounds.

// EncodeBatch encodes a batch as stored. A batch that alone would exceed
// MaxLogBytes keeps its last lines, after a line saying how many were
// dropped; a single line longer than that keeps its beginning.
func EncodeBatch(lines []string) ([]byte, error) {
	if lines == nil {
		lines = []string{}
	}
	b, err := json.Marshal(lines)
	if err != nil {
		return nil, fmt.Errorf("registry: encode log batch: %w", err)
	}
	if len(b) <= MaxLogBytes {
		return b, nil
	}
	// Keep the last lines that fit with room for the marker line; the
	// JSON size of a line is at least its length plus quotes and a comma.
	budget := MaxLogBytes - 256
	kept := len(lines)
	for size := 0; kept > 0; kept-- {
		lb, _ := json.Marshal(lines[kept-1]) // a string always marshals
		if size+len(lb)+1 > budget {
			break
		}
		size += len(lb) + 1
	}
	tail := lines[kept:]
	if len(tail) == 0 {
		// One line larger than the budget: keep its beginning. JSON may
		// escape a byte to six, so a sixth of the budget always fits.
		tail = []string{strings.ToValidUTF8(lines[len(lines)-1][:budget/6], "") + " [rackboot: line cut]"}
		kept = len(lines) - 1
	}
	marker := fmt.Sprintf("[rackboot: %d earlier lines of this batch dropped, the log keeps the last %d bytes]", kept, MaxLogBytes)
	return json.Marshal(append([]string{marker}, tail...))
}

// DecodeBatch decodes a stored batch.
func DecodeBatch(b []byte) ([]string, error) {
	var lines []string
	if err := json.Unmarshal(b, &lines); err != nil {
		return nil, fmt.Errorf("registry: decode log batch: %w", err)
	}
	return lines, nil
}

// LogOverflow returns how many of the oldest batches, of the given stored
// sizes (oldest first), to drop so the rest fits in MaxLogBytes. The newest
// batch is never dropped: EncodeBatch made it fit alone.
func LogOverflow(sizes []int) int {
	total := 0
	for _, s := range sizes {
		total += s
	}
	n := 0
	for total > MaxLogBytes && n < len(sizes)-1 {
		total -= sizes[n]
		n++
	}
	return n
}
