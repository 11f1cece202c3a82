package artifacts

import (
	"strconv"
	"strings"
)

// maxRanges is the most byte ranges one request may ask for. Resuming
// clients (the agent, iPXE, curl -C) ask for one; nothing rackboot serves
// is read in many pieces. http.ServeContent answers any number of ranges
// with a multipart body that costs about a hundred bytes of part header
// each, and refuses only ranges whose total exceeds the file: a 0.8 MB
// header of one-byte ranges made a 9.5 MB response (issue 13).
const maxRanges = 16

// rangesAcceptable reports whether a Range header (RFC 9110 14.2) asks for
// at most maxRanges ranges of a file of size bytes, none overlapping
// another. RFC 9110 lets a server refuse both, to guard against exactly
// this. A header it cannot parse is left to http.ServeContent, which
// answers 416 or ignores it as the RFC says.
func rangesAcceptable(header string, size int64) bool {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return true
	}
	if strings.Count(spec, ",") >= maxRanges {
		return false
	}
	type span struct{ start, end int64 } // [start, end)
	var spans []span
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return true
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var sp span
		switch {
		case first == "": // the last n bytes
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil {
				return true
			}
			sp = span{max(size-n, 0), size}
		default:
			a, err := strconv.ParseInt(first, 10, 64)
			if err != nil {
				return true
			}
			b := size - 1
			if last != "" {
				if b, err = strconv.ParseInt(last, 10, 64); err != nil {
					return true
				}
			}
			sp = span{a, min(b, size-1) + 1}
		}
		if sp.start >= sp.end {
			continue // unsatisfiable: ServeContent decides
		}
		for _, o := range spans {
			if sp.start < o.end && o.start < sp.end {
				return false
			}
		}
		spans = append(spans, sp)
	}
	return true
}
