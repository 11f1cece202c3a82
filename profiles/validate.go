package profiles

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// validHostname reports whether s is an RFC 1123 host name.
func validHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// safeChars are the characters allowed in artifact locations and kernel
// arguments. They exclude everything iPXE's script language gives a meaning
// to ($ for expansion, ; & | for command lists, # for comments, quotes,
// backslash, braces) and every control character, so a YAML value can never
// become a second command.
func safeChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.ContainsRune("._,:=/@+%-~?", c)
}

// checkLocation accepts an http(s) URL or a relative path under the
// artifacts directory that stays inside it.
func checkLocation(s string) error {
	for _, c := range s {
		if !safeChar(c) {
			return fmt.Errorf("%q: character %q not allowed", s, c)
		}
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("%q: only http and https URLs or artifact paths are allowed", s)
		}
		return nil
	}
	if strings.HasPrefix(s, "/") {
		return fmt.Errorf("%q: artifact paths are relative to the artifacts directory", s)
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == ".." {
			return fmt.Errorf("%q: path leaves the artifacts directory", s)
		}
	}
	if path.Clean(s) != s || strings.ContainsAny(s, "?") {
		return fmt.Errorf("%q: not a clean path (want %q)", s, path.Clean(s))
	}
	return nil
}

// checkCmdline accepts space-separated kernel arguments made of safe
// characters. rackboot.* arguments are reserved: rackboot sets them itself.
func checkCmdline(s string) error {
	for _, c := range s {
		if c != ' ' && !safeChar(c) {
			return fmt.Errorf("character %q not allowed in kernel arguments", c)
		}
	}
	for _, arg := range strings.Fields(s) {
		if strings.HasPrefix(arg, "rackboot.") {
			return errors.New(arg + ": rackboot.* arguments are set by rackboot, not by profiles")
		}
	}
	return nil
}
