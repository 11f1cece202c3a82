package profiles

import (
	"bytes"
	"errors"
	"io"

	"go.yaml.in/yaml/v3"
)

// The yaml library reports a syntax error's line from the wrong mark. Its
// marks are 0-based; for a scanner error it reports the line where the
// token being scanned began, plus one (a tab that breaks the indentation of
// line 40 is reported on line 39, where the plain scalar before it began);
// for a parser error it reports the 0-based line of the collection being
// parsed, without adding one (an entry indented wrongly on line 9 of a
// list that begins on line 5 is reported on line 4), and on the first line
// it reports no line at all. The mark of the problem itself is not
// exported.
//
// syntaxLine finds the problem's line instead: the first line whose end,
// when the file is cut there, already produces the same error. The library
// reads a file front to back, so the error appears exactly when the text
// that causes it is included. The library's own line is a lower bound (a
// context starts before its problem), and the search gallops forward from
// it, then bisects: O(log n) parses of a prefix, only for a file that does
// not parse.
func syntaxLine(b []byte, msg string, reported int) int {
	ends := lineEnds(b)
	last := len(ends) // lines in the file
	fails := func(n int) bool { return prefixError(b[:ends[n-1]]) == msg }
	lo := max(reported, 1)
	if lo > last {
		return reported
	}
	if fails(lo) {
		return lo
	}
	// Gallop: fails(lo) is false; find hi > lo where it is true.
	hi := lo
	for step := 1; ; step *= 2 {
		hi = min(lo+step, last)
		if fails(hi) {
			break
		}
		if hi == last {
			return reported // only the whole file fails so (or none does): keep the library's line
		}
		lo = hi
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// lineEnds returns the offset just past each line of b, its line break
// included; len is the number of lines.
func lineEnds(b []byte) []int {
	var ends []int
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return append(ends, len(b))
		}
		i += j + 1
		ends = append(ends, i)
	}
	return ends
}

// prefixError is the message, without its line, of the first error that
// decoding every document of b meets; "" when there is none.
func prefixError(b []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			_, msg := splitYAMLError(err.Error())
			return msg
		}
	}
}

// splitYAMLError splits "yaml: line N: msg" (or "yaml: msg") into N (0
// when absent) and msg.
func splitYAMLError(s string) (int, string) { return splitLine(yamlLineRe, s) }

// syntaxError records an error of the yaml library's parser (not a
// TypeError) at the line where the problem is, found in b.
func (c *checker) syntaxError(err error, b []byte) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		c.yamlError(err)
		return
	}
	reported, msg := splitYAMLError(err.Error())
	c.errs = append(c.errs, Error{File: c.file, Line: syntaxLine(b, msg, reported), Msg: oneLine(msg)})
}
