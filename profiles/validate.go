package profiles

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/rackboot/rackboot/agentapi"
)

// The checks of single values. Each returns an error whose message is
// complete without the value's key; the loader adds file:line and the key.
// A check never quotes a secret (a password) in its message.

// validHostname reports whether s is an RFC 1123 host name.
func validHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
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

// The patterns of names, shared with the JSON Schema (schema.go) so that an
// editor and the loader accept the same names.
var patterns = map[string]string{
	// versions, layouts, groups, channels: they appear in file names,
	// metrics labels and messages.
	"name": `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`,
	// GPT names are 36 UTF-16 code units; ASCII keeps them readable by
	// every tool.
	"partname": `^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$`,
	// POSIX portable user names (useradd's default NAME_REGEX).
	"username": `^[a-z_][a-z0-9_-]{0,31}$`,
	"sha256":   `^[0-9a-fA-F]{64}$`,
	"mode":     `^0?[0-7]{3,4}$`,
	"size":     `^[0-9]+ ?([KMGT](iB|B)?|B)?$`,
	// "sizeorrest" is size or the literal rest.
	"sizeorrest": `^(rest|[0-9]+ ?([KMGT](iB|B)?|B)?)$`,
	"hostname":   `^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`,
	"crypt":      `^\$(1|5|6|y|gy|7|2[abxy]|sha1|md5)\$`,
	"labelkey":   `^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`,
	"labelvalue": `^[A-Za-z0-9._-]{0,63}$`,
	// the spellings ParseMAC accepts
	"mac":       `^ *([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}|[0-9A-Fa-f]{12}) *$`,
	"macprefix": `^ *([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){0,4}|[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){0,4}|([0-9A-Fa-f]{2}){1,5}) *$`,
	// a mount point needs no escaping in /etc/fstab or a shell; or swap
	"mount": `^(swap|(/[A-Za-z0-9._-]+)+)$`,
	// cloud-config's top-level keys are lower case (ssh_pwauth, ca-certs)
	"cloudkey": `^[a-z_][a-z0-9_-]{0,63}$`,
}

var (
	nameRe       = regexp.MustCompile(patterns["name"])
	partNameRe   = regexp.MustCompile(patterns["partname"])
	userNameRe   = regexp.MustCompile(patterns["username"])
	sha256Re     = regexp.MustCompile(patterns["sha256"])
	modeRe       = regexp.MustCompile(patterns["mode"])
	labelKeyRe   = regexp.MustCompile(patterns["labelkey"])
	labelValueRe = regexp.MustCompile(patterns["labelvalue"])
	mountRe      = regexp.MustCompile(patterns["mount"])
	cloudKeyRe   = regexp.MustCompile(patterns["cloudkey"])
)

// CheckName checks the name of a version, a channel, a layout or a group:
// what the profiles accept, for tools that make catalog entries.
func CheckName(s string) error { return checkName(s) }

func checkName(s string) error {
	if !nameRe.MatchString(s) {
		return fmt.Errorf("invalid name %q: want letters, digits, '.', '_', '-', at most 63 characters", s)
	}
	return nil
}

// safeChar reports whether c is allowed in artifact locations and kernel
// arguments. The set excludes everything iPXE's script language gives a
// meaning to ($ for expansion, ; & | for command lists, # for comments,
// quotes, backslash, braces) and every control character, so a YAML value
// can never become a second command.
func safeChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.ContainsRune("._,:=/@+%-~?", c)
}

// checkLocation accepts an http(s) URL or a relative path under the
// artifacts directory that stays inside it.
func checkLocation(s string) error {
	if s == "" {
		return errors.New("empty location")
	}
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
	if strings.Contains(s, ":") {
		// "http:x" or "file:x": a URL without "//" is no artifact path.
		return fmt.Errorf("%q: only http and https URLs or artifact paths are allowed", s)
	}
	for seg := range strings.SplitSeq(s, "/") {
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
		switch {
		case agentapi.AfterArg(arg):
			// What the installed machine does after the install: the
			// one rackboot.* argument that is the admin's.
		case strings.HasPrefix(arg, agentapi.ParamAfter+"="):
			return fmt.Errorf("%s: want %s=%s or %s=%s", arg, agentapi.ParamAfter, agentapi.AfterReboot, agentapi.ParamAfter, agentapi.AfterPoweroff)
		case strings.HasPrefix(arg, "rackboot."):
			return errors.New(arg + ": rackboot.* arguments are set by rackboot, not by profiles (" + agentapi.ParamAfter + " excepted)")
		}
	}
	return nil
}

// units are the multipliers of sizes. The one-letter forms are binary, as
// in sgdisk, parted and LVM, because that is what admins mean by "20G".
var units = map[string]uint64{
	"": 1, "B": 1,
	"K": 1 << 10, "KiB": 1 << 10, "KB": 1e3,
	"M": 1 << 20, "MiB": 1 << 20, "MB": 1e6,
	"G": 1 << 30, "GiB": 1 << 30, "GB": 1e9,
	"T": 1 << 40, "TiB": 1 << 40, "TB": 1e12,
}

// parseSize parses a size such as 512MiB, 20G or 1TB into bytes.
func parseSize(s string) (uint64, error) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	unit := strings.TrimPrefix(s[i:], " ")
	mul, ok := units[unit]
	if i == 0 || !ok {
		return 0, fmt.Errorf("invalid size %q: want a number and a unit (B, KiB, MiB, GiB, TiB; KB, MB, GB, TB)", s)
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil || n > math.MaxUint64/mul {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("invalid size %q: must be positive", s)
	}
	return n * mul, nil
}

// formatSize prints n with the largest binary unit that divides it.
func formatSize(n uint64) string {
	for _, u := range []struct {
		name string
		mul  uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mul && n%u.mul == 0 {
			return strconv.FormatUint(n/u.mul, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// checkDevicePath accepts an absolute, clean path under /dev made of
// characters that udev uses in its by-id and by-path names.
func checkDevicePath(s string) error {
	if !strings.HasPrefix(s, "/dev/") || len(s) == len("/dev/") {
		return fmt.Errorf("disk path %q: want a device under /dev/", s)
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("/._:+-@=,", c)) {
			return fmt.Errorf("disk path %q: character %q not allowed", s, c)
		}
	}
	if path.Clean(s) != s || strings.Contains(s, "/../") {
		return fmt.Errorf("disk path %q: not a clean path", s)
	}
	return nil
}

// checkFilePath accepts an absolute, clean path on the installed machine.
func checkFilePath(s string) error {
	if !strings.HasPrefix(s, "/") {
		return fmt.Errorf("file path %q: want an absolute path", s)
	}
	if len(s) > 4096 {
		return errors.New("file path: longer than 4096 bytes")
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("file path %q: control character %q not allowed", s, c)
		}
	}
	for seg := range strings.SplitSeq(s, "/") {
		if seg == ".." {
			return fmt.Errorf("file path %q: '..' not allowed", s)
		}
	}
	if path.Clean(s) != s || s == "/" {
		return fmt.Errorf("file path %q: not a clean path to a file", s)
	}
	return nil
}

// maxFileContent bounds one extra file: the config drive is small, and a
// profile is no place for binaries.
const maxFileContent = 256 << 10

func checkMode(s string) error {
	if !modeRe.MatchString(s) {
		return fmt.Errorf("invalid mode %q: want octal permissions such as \"0644\"", s)
	}
	return nil
}

func checkOwner(s string) error {
	u, g, _ := strings.Cut(s, ":")
	if !userNameRe.MatchString(u) || g != "" && !userNameRe.MatchString(g) {
		return fmt.Errorf("invalid owner %q: want user or user:group", s)
	}
	return nil
}

// checkSSHKey accepts one authorized_keys line (options allowed) whose key
// parses.
func checkSSHKey(s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return errors.New("ssh key: one key per entry, without newlines")
	}
	_, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return fmt.Errorf("ssh key %q: %w", abbrev(s), err)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return fmt.Errorf("ssh key %q: trailing data", abbrev(s))
	}
	return nil
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// cryptRe matches the crypt(3) hash formats of libxcrypt that a Linux
// /etc/shadow accepts: $1$ (MD5), $5$ and $6$ (SHA-crypt, with optional
// rounds=), $y$ and $gy$ (yescrypt), $7$ (scrypt), $2a$/$2b$/$2x$/$2y$
// (bcrypt), $sha1$ and $md5$ (SunOS-derived). The salt and hash alphabet is
// crypt's base64 ([./0-9A-Za-z]).
var cryptRe = regexp.MustCompile(`^(` +
	`\$1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}` +
	`|\$5\$(rounds=[0-9]{1,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{43}` +
	`|\$6\$(rounds=[0-9]{1,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}` +
	`|\$g?y\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{1,86}\$[./0-9A-Za-z]{43}` +
	`|\$7\$[./0-9A-Za-z]{11,}\$[./0-9A-Za-z]{43}` +
	`|\$2[abxy]\$[0-9]{2}\$[./0-9A-Za-z]{53}` +
	`|\$sha1\$[0-9]+\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{28}` +
	`|\$md5(,rounds=[0-9]+)?\$[./0-9A-Za-z]+\$\$?[./0-9A-Za-z]{22}` +
	`)$`)

// checkPassword accepts a crypt(3) hash and nothing else. The message never
// repeats the value: it may be a real password typed in the wrong place.
func checkPassword(s string) error {
	if cryptRe.MatchString(s) {
		return nil
	}
	if strings.HasPrefix(s, "$") {
		return errors.New("password: not a valid crypt(3) hash ($6$…, $y$…, $2b$…)")
	}
	return errors.New("password: must be a crypt(3) hash, never plaintext (generate one with `mkpasswd -m sha-512`)")
}

func checkLabel(k, v string) error {
	if !labelKeyRe.MatchString(k) {
		return fmt.Errorf("invalid label key %q: want letters, digits, '.', '_', '/', '-', at most 63 characters", k)
	}
	if !labelValueRe.MatchString(v) {
		return fmt.Errorf("invalid label value %q: want letters, digits, '.', '_', '-', at most 63 characters", v)
	}
	return nil
}

// checkAddress parses a static address with its prefix length; the
// address must be a host of its subnet.
func checkAddress(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("invalid address %q: want an address with prefix length, e.g. 10.0.1.11/24", s)
	}
	if p.Addr().Zone() != "" {
		return p, fmt.Errorf("invalid address %q: zones not allowed", s)
	}
	if p.Addr().Is4() && p.Bits() < 31 && p.Addr() == p.Masked().Addr() {
		return p, fmt.Errorf("invalid address %q: that is the subnet's network address", s)
	}
	return p, nil
}

func checkIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return a, fmt.Errorf("invalid IP address %q", s)
	}
	return a, nil
}

// checkGateway checks that gw can be reached on p's subnet. An unparsable
// gw is reported by checkIP.
func checkGateway(p netip.Prefix, gw string) error {
	a, err := netip.ParseAddr(gw)
	if err != nil {
		return nil
	}
	if a.Is4() != p.Addr().Is4() {
		return fmt.Errorf("gateway %s and address %s are of different IP versions", gw, p)
	}
	if !p.Masked().Contains(a) && !a.Is6() {
		return fmt.Errorf("gateway %s is outside the subnet of %s", gw, p)
	}
	if a == p.Addr() {
		return fmt.Errorf("gateway %s is the host's own address", gw)
	}
	return nil
}

// systemDirs are directories of the installed system itself: an empty
// file system mounted over one would hide what the image put there (or,
// for /var/lib/cloud, cloud-init's own state in the middle of its run).
// Their subdirectories are refused too, except under /var and /var/lib,
// where /var/log or /var/lib/docker are ordinary mount points.
var systemDirs = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
	"/proc", "/run", "/sbin", "/sys", "/usr", "/var/lib/cloud"}

// checkMountPath accepts an absolute, clean mount point made of characters
// that need no escaping in /etc/fstab or a shell, outside the installed
// system's own directories.
func checkMountPath(s string) error {
	if !mountRe.MatchString(s) || s == MountSwap {
		return fmt.Errorf("mount %q: want an absolute path of letters, digits, '.', '_', '-' (or swap, for a swap partition)", s)
	}
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("mount %q: not a clean path", s)
		}
	}
	if s == "/var" || s == "/var/lib" {
		return fmt.Errorf("mount %s: a directory of the installed system itself: an empty file system mounted over it would hide what the image put there", s)
	}
	for _, d := range systemDirs {
		if s == d || strings.HasPrefix(s, d+"/") {
			return fmt.Errorf("mount %s: a directory of the installed system itself (%s): an empty file system mounted there would hide what the image put there", s, d)
		}
	}
	return nil
}
