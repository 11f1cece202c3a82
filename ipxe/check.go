package ipxe

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// safePunct is the punctuation a value may carry into a script, besides
// ASCII letters and digits. It is the set profiles accepts, and it leaves out
// everything iPXE's command language gives a meaning to: "$" and braces
// (setting expansion, "${name}"), ";", "&&" and "||" (command lists), "#"
// at the start of a word (a comment), quotes and backslash (a backslash at
// the end of a line joins it to the next one), and whitespace and control
// characters (word and line separators). See iPXE src/core/exec.c and
// src/image/script.c.
const safePunct = "._,:=/@+%-~?"

func safeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte(safePunct, c) >= 0
}

// safeWord reports whether s is non-empty and made of safe bytes only, so
// iPXE reads it as exactly one literal word.
func safeWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			return false
		}
	}
	return true
}

// location turns a profile's kernel or initrd into the URL the script
// fetches. An http(s) URL is used as is; anything else is a path under the
// artifacts directory, escaped segment by segment, with ?mac= appended: iPXE
// sends no MAC of its own when it fetches a file, and the artifacts log needs
// to say which machine asked.
func location(base, loc string, f Facts) (string, error) {
	if loc == "" {
		return "", errors.New("empty location")
	}
	if !safeWord(loc) {
		return "", fmt.Errorf("%q: only letters, digits and %s are allowed", loc, safePunct)
	}
	if strings.Contains(loc, "://") {
		u, err := url.Parse(loc)
		if err != nil {
			return "", fmt.Errorf("%q: %w", loc, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return "", fmt.Errorf("%q: want an http(s) URL or a path under the artifacts directory", loc)
		}
		return loc, nil
	}
	if strings.HasPrefix(loc, "/") || path.Clean(loc) != loc {
		return "", fmt.Errorf("%q: want a clean path relative to the artifacts directory", loc)
	}
	segs := strings.Split(loc, "/")
	for i, s := range segs {
		if s == ".." {
			return "", fmt.Errorf("%q: path leaves the artifacts directory", loc)
		}
		segs[i] = url.PathEscape(s)
	}
	return base + ArtifactsPath + strings.Join(segs, "/") + "?mac=" + hyphenMAC(f.MAC), nil
}

// checkBase accepts the server URL scripts point at: http or https, a host
// name or IP literal with an optional port, nothing else.
func checkBase(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%q: want http://HOST[:PORT]", base)
	}
	if u.Scheme+"://"+u.Host != base {
		return fmt.Errorf("%q: want http://HOST[:PORT]", base)
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q: IPv6 zones are not supported", base)
		}
	} else if !validHostname(host) {
		return fmt.Errorf("%q: invalid host", base)
	}
	if p := u.Port(); p != "" {
		if _, err := netip.ParseAddrPort("0.0.0.0:" + p); err != nil {
			return fmt.Errorf("%q: invalid port", base)
		}
	}
	return nil
}

// validHostname reports whether s is an RFC 1123 host name.
func validHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// scriptCommand reports whether a rendered script may use command c.
func scriptCommand(c string) bool {
	switch c {
	case "echo", "kernel", "initrd", "boot", "goto", "sleep", "exit", "sanboot", "chain":
		return true
	}
	return false
}

// localBoot is the only sanboot a script may hold: the first BIOS disk,
// never a URL.
const localBoot = "sanboot --no-describe --drive 0x80"

// checkScript is the last line of defence: it parses a rendered script the
// way iPXE will and accepts it only if every line is a label or one of
// scriptCommands with literal words, each command list is at most
// "COMMAND || goto LABEL" with a label the script defines, and no word holds
// a character outside the safe set (plus the parentheses and brackets of
// console messages and IPv6 URLs). Whatever a value smuggled past its own
// validation, it cannot become a second command, expand a setting or start a
// comment without failing here.
func checkScript(s string) error {
	body, ok := strings.CutPrefix(s, "#!ipxe\n")
	if !ok || !strings.HasSuffix(body, "\n") {
		return errors.New("script must start with #!ipxe and end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	labels := map[string]bool{}
	for _, l := range lines {
		if name, ok := strings.CutPrefix(l, ":"); ok {
			if !validLabel(name) {
				return fmt.Errorf("bad label line %q", l)
			}
			labels[name] = true
		}
	}
	for n, l := range lines {
		if strings.HasPrefix(l, ":") {
			continue
		}
		words := strings.Split(l, " ")
		if k := len(words); k >= 4 && words[k-3] == "||" && words[k-2] == "goto" {
			if !labels[words[k-1]] {
				return fmt.Errorf("line %d: goto to undefined label", n+2)
			}
			words = words[:k-3]
		}
		if !scriptCommand(words[0]) {
			return fmt.Errorf("line %d: command %q not allowed", n+2, words[0])
		}
		if words[0] == "goto" && (len(words) != 2 || !labels[words[1]]) {
			return fmt.Errorf("line %d: goto to undefined label", n+2)
		}
		if words[0] == "chain" && (len(words) != 3 || words[1] != "--replace" || !strings.HasSuffix(words[2], "/boot.ipxe")) {
			return fmt.Errorf("line %d: chain other than \"chain --replace BASE/boot.ipxe\" (a held machine asking again)", n+2)
		}
		if words[0] == "sanboot" && strings.Join(words, " ") != localBoot {
			return fmt.Errorf("line %d: sanboot other than %q", n+2, localBoot)
		}
		for _, w := range words[1:] {
			if w == "" {
				return fmt.Errorf("line %d: empty word (double or trailing space)", n+2)
			}
			for i := 0; i < len(w); i++ {
				if c := w[i]; !safeByte(c) && strings.IndexByte("()[]", c) < 0 {
					return fmt.Errorf("line %d: character %q not allowed", n+2, c)
				}
			}
		}
	}
	return nil
}

func validLabel(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}
