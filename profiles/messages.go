package profiles

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The yaml library reports type errors as "line N: msg" and syntax errors
// as "yaml: line N: msg".
var (
	lineRe     = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	yamlLineRe = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)
)

// checker collects the errors of one file.
type checker struct {
	file string
	errs ErrorList
}

func (c *checker) errorf(n *yaml.Node, format string, args ...any) {
	c.errAt(at(n), format, args...)
}

func (c *checker) errAt(p pos, format string, args ...any) {
	c.errs = append(c.errs, Error{File: c.file, Line: p.line, Column: p.col, Msg: oneLine(fmt.Sprintf(format, args...))})
}

// yamlError turns the library's messages (a TypeError with one "line N: …"
// per problem, or "yaml: line N: …") into positioned errors.
func (c *checker) yamlError(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, msg := range te.Errors {
			c.errs = append(c.errs, lineError(c.file, lineRe, humanize(msg)))
		}
		return
	}
	c.errs = append(c.errs, lineError(c.file, yamlLineRe, err.Error()))
}

var (
	unknownRe = regexp.MustCompile(`^(line \d+: )field (.*) not found in type (\S+)$`)
	typeRe    = regexp.MustCompile(`(\[\])?\*?profiles\.(\w+)`)
)

// humanize rewrites the library's messages for people: Go type names become
// what the admin wrote ("field X not found in type profiles.hostDoc" is
// `unknown key "X" in a host`), with the closest known key as a suggestion,
// since a typo in a key is the commonest mistake of all.
func humanize(msg string) string {
	if m := unknownRe.FindStringSubmatch(msg); m != nil {
		out := fmt.Sprintf("%sunknown key %q in %s", m[1], m[2], typeNoun(m[3], false))
		if m[3] == "profiles.file" {
			out += " (want defaults, versions, layouts, groups, hosts)"
		}
		if m[3] == "profiles.BMC" && (m[2] == "password" || m[2] == "pass") {
			return out + ": a BMC password never goes in the profiles; write it to a file of the appliance's credentials directory and name that file with credential:"
		}
		if s := closest(m[2], knownKeys(m[3])); s != "" {
			out += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return out
	}
	return typeRe.ReplaceAllStringFunc(msg, func(t string) string {
		return typeNoun(t, strings.HasPrefix(t, "[]"))
	})
}

// typeNoun names a decoded type ("profiles.hostDoc", "[]profiles.User")
// as a noun.
func typeNoun(t string, list bool) string {
	name := strings.TrimLeft(t, "[]*")
	noun, ok := describeType[name]
	if !ok {
		return t
	}
	switch {
	case list:
		return "a list of " + noun + "s"
	case noun == "defaults":
		return noun
	}
	if strings.IndexByte("aeiou", noun[0]) >= 0 {
		return "an " + noun
	}
	return "a " + noun
}

// closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a typo of it.
func closest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+1
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func lineError(name string, re *regexp.Regexp, msg string) Error {
	n, m := splitLine(re, msg)
	return Error{File: name, Line: n, Msg: oneLine(m)}
}

// splitLine splits "line N: msg" as re matches it into N and msg; a msg
// that re does not match has line 0 and loses only its "yaml: ".
func splitLine(re *regexp.Regexp, msg string) (int, string) {
	if m := re.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}
