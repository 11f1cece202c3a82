package profiles

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// The BMC protocols (BMC.Protocol).
const (
	BMCIPMI    = "ipmi"
	BMCRedfish = "redfish"
)

// checkBMCAddress checks a BMC address for protocol ("" when the level
// that sets the address does not say: then either form is accepted here,
// and the host's resolved BMC is checked again).
func checkBMCAddress(protocol, addr string) error {
	if strings.Contains(addr, "://") {
		if protocol == BMCIPMI {
			return fmt.Errorf("%q: an ipmi address is host or host:port, not a URL", addr)
		}
		u, err := url.Parse(addr)
		if err != nil {
			return fmt.Errorf("%q is not a URL", addr)
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			return fmt.Errorf("%q: a redfish URL is https://host[:port] or http://host[:port]", addr)
		}
		if u.User != nil {
			return fmt.Errorf("%q: credentials never go in the address: name a credential file with credential", u.Redacted())
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q: give the BMC's base URL only (rackboot asks /redfish/v1/ itself)", addr)
		}
		return checkHostPort(u.Host)
	}
	return checkHostPort(addr)
}

// checkHostPort checks host or host:port, host an IP address (IPv6 in
// brackets with a port) or a DNS name.
func checkHostPort(s string) error {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.Count(s, ":") > 1 {
		host = strings.Trim(s, "[]") // a bare IPv6 address
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not 1 to 65535", s, port)
		}
	}
	if host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", s, host)
	}
	return nil
}

// bmc resolves the host's BMC key by key over its levels.
func (r *resolution) bmc() {
	of := func(s *settings) *BMC {
		if s.BMC == nil {
			return &BMC{}
		}
		return s.BMC
	}
	var b BMC
	any := false
	for _, k := range []struct {
		field string
		get   func(*BMC) string
		set   func(string)
	}{
		{"bmc.protocol", func(b *BMC) string { return b.Protocol }, func(v string) { b.Protocol = v }},
		{"bmc.address", func(b *BMC) string { return b.Address }, func(v string) { b.Address = v }},
		{"bmc.username", func(b *BMC) string { return b.Username }, func(v string) { b.Username = v }},
		{"bmc.credential", func(b *BMC) string { return b.Credential }, func(v string) { b.Credential = v }},
		{"bmc.system", func(b *BMC) string { return b.System }, func(v string) { b.System = v }},
		{"bmc.insecure_tls", func(b *BMC) string {
			if b.InsecureTLS {
				return "true"
			}
			return ""
		}, func(v string) { b.InsecureTLS = v == "true" }},
	} {
		win := r.choose(k.field, func(s *settings) bool { return k.get(of(s)) != "" },
			func(a, c *settings) bool { return k.get(of(a)) == k.get(of(c)) })
		if win != nil {
			k.set(k.get(of(win.s)))
			any = true
		}
	}
	if any {
		r.host.BMC = &b
	}
}

// checkBMC checks that the host's resolved BMC is complete and that
// every key has an effect with its protocol.
func (r *resolution) checkBMC() {
	b := r.host.BMC
	if b == nil || r.h == nil {
		return
	}
	var problems []string
	var missing []string
	for _, k := range []struct{ key, val string }{{"protocol", b.Protocol}, {"address", b.Address}, {"username", b.Username}, {"credential", b.Credential}} {
		if k.val == "" {
			missing = append(missing, k.key)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, "needs "+strings.Join(missing, ", ")+" (from the host, a group or the defaults)")
	}
	if b.Protocol == BMCIPMI && (b.System != "" || b.InsecureTLS) {
		problems = append(problems, "system and insecure_tls are redfish keys: an ipmi BMC has no use for them")
	}
	// A level that sets both was checked with its file; an address and a
	// protocol from different levels meet here.
	if b.Protocol != "" && b.Address != "" && r.host.From("bmc.address") != r.host.From("bmc.protocol") {
		if err := checkBMCAddress(b.Protocol, b.Address); err != nil {
			problems = append(problems, "address: "+err.Error())
		}
	}
	if b.InsecureTLS && strings.HasPrefix(b.Address, "http://") {
		problems = append(problems, "insecure_tls has no effect on an http:// address")
	}
	if len(problems) > 0 {
		r.sink.errOnce("bmc\x00"+MACKey(r.host.MAC), r.h.lv.file, r.h.macPos, "host %s: bmc %s", r.h.hw, strings.Join(problems, "; "))
	}
}

// String says where the BMC is, for messages: "ipmi
// 10.0.9.11:623" (never the credential's contents, which the profiles do
// not have).
func (b *BMC) String() string {
	if b == nil {
		return ""
	}
	return b.Protocol + " " + b.Address
}
