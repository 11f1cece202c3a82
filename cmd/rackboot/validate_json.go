package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/profiles"
)

// validateJSON is what `rackboot validate --json` prints: the same facts
// as the text, the summary line's counts or every error of the list, so
// that a script never parses the text.
type validateJSON struct {
	OK       bool                `json:"ok"`
	Hosts    int                 `json:"hosts"`
	Groups   int                 `json:"groups"`
	Versions int                 `json:"versions"`
	Layouts  int                 `json:"layouts"`
	Files    int                 `json:"files"`
	Digest   string              `json:"digest,omitempty"`
	Errors   []validateJSONError `json:"errors,omitempty"`
	// Artifacts is the check of --artifacts, when given and the
	// profiles load.
	Artifacts *validateArtifacts `json:"artifacts,omitempty"`
}

// validateArtifacts is the outcome of the catalog check: versions
// installable from the directory and not, and each problem with the
// file:line of the entry it concerns, as the text prints it.
type validateArtifacts struct {
	Dir      string              `json:"dir"`
	OK       int                 `json:"ok"`
	Failed   int                 `json:"failed"`
	Problems []validateJSONError `json:"problems,omitempty"`
}

// problemsJSON splits the catalog check's problems, "file:line: message"
// (or "defaults: message"), into their parts.
func problemsJSON(problems []string) []validateJSONError {
	out := make([]validateJSONError, 0, len(problems))
	for _, p := range problems {
		e := validateJSONError{Message: p}
		if src, msg, ok := strings.Cut(p, ": "); ok {
			if i := strings.LastIndexByte(src, ':'); i > 0 {
				if line, err := strconv.Atoi(src[i+1:]); err == nil {
					e = validateJSONError{File: src[:i], Line: line, Message: msg}
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// validateJSONError is one profiles.Error; line and column are 0 when
// unknown, file is empty for an error of the directory itself.
type validateJSONError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

// printValidateJSON prints the outcome of a Load, and of the catalog check
// of dir when st is not nil, as JSON on stdout and returns the exit code:
// 0 valid, 1 not.
func printValidateJSON(stdout, stderr io.Writer, set *profiles.Set, err error, dir string, st *catalogStatus) int {
	out := validateJSON{OK: err == nil && (st == nil || len(st.Problems) == 0)}
	if st != nil {
		out.Artifacts = &validateArtifacts{Dir: dir, OK: st.OK, Failed: st.Failed, Problems: problemsJSON(st.Problems)}
	}
	var list profiles.ErrorList
	switch {
	case err == nil:
		out.Hosts, out.Groups, out.Versions = set.Len(), len(set.Groups()), len(set.Versions())
		out.Layouts, out.Files, out.Digest = len(set.Layouts()), len(set.Files()), set.Digest()
	case errors.As(err, &list):
		for _, e := range list {
			out.Errors = append(out.Errors, validateJSONError{File: e.File, Line: e.Line, Column: e.Column, Message: e.Msg})
		}
	default:
		out.Errors = []validateJSONError{{Message: err.Error()}}
	}
	b, merr := json.MarshalIndent(out, "", "  ")
	if merr == nil {
		_, merr = fmt.Fprintf(stdout, "%s\n", b)
	}
	if merr != nil {
		fmt.Fprintf(stderr, "rackboot validate: %v\n", merr)
		return 1
	}
	if !out.OK {
		return 1
	}
	return 0
}
