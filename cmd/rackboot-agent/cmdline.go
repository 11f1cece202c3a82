package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
)

// config is what the agent reads from /proc/cmdline.
type config struct {
	// Servers are the appliances' agent APIs, no path: the one that
	// served the boot script first, then the others of its fleet, which
	// the client fails over to (client.failover).
	Servers []*url.URL
	MAC     net.HardwareAddr // the boot NIC
	Token   string
	After   string // agentapi.AfterReboot or agentapi.AfterPoweroff
}

// parseCmdline reads the agent's parameters from a kernel command line.
// Everything else on it (console=, quiet, the kernel's own) is ignored.
// A parameter given twice takes its last value, as the kernel's own
// parameters do.
func parseCmdline(s string) (config, error) {
	p := cmdlineParams(s)
	var cfg config
	var errs []error
	if v, ok := p[agentapi.ParamServer]; !ok || v == "" {
		errs = append(errs, fmt.Errorf("%s= missing", agentapi.ParamServer))
	} else if us, err := parseServers(v); err != nil {
		errs = append(errs, err)
	} else {
		cfg.Servers = us
	}
	if v, ok := p[agentapi.ParamMAC]; !ok || v == "" {
		errs = append(errs, fmt.Errorf("%s= missing", agentapi.ParamMAC))
	} else if hw, err := net.ParseMAC(v); err != nil || len(hw) != 6 {
		errs = append(errs, fmt.Errorf("%s=%q: not an Ethernet MAC address", agentapi.ParamMAC, v))
	} else {
		cfg.MAC = hw
	}
	switch v := p[agentapi.ParamToken]; {
	case v == "":
		errs = append(errs, fmt.Errorf("%s= missing", agentapi.ParamToken))
	case !printableToken(v):
		// It goes into an HTTP header: refuse what would break it.
		errs = append(errs, fmt.Errorf("%s: not a printable ASCII token", agentapi.ParamToken))
	default:
		cfg.Token = v
	}
	switch v := p[agentapi.ParamAfter]; v {
	case "", agentapi.AfterReboot:
		cfg.After = agentapi.AfterReboot
	case agentapi.AfterPoweroff:
		cfg.After = agentapi.AfterPoweroff
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want %s or %s", agentapi.ParamAfter, v, agentapi.AfterReboot, agentapi.AfterPoweroff))
	}
	if len(errs) > 0 {
		return config{}, fmt.Errorf("kernel command line: %w", errors.Join(errs...))
	}
	return cfg, nil
}

// parseServers accepts a comma-separated list of appliance URLs, each as
// parseServer does: the serving appliance's, then the other appliances'
// of its fleet (ipxe.Appliance.Peers).
func parseServers(v string) ([]*url.URL, error) {
	var us []*url.URL
	var errs []error
	for _, s := range strings.Split(v, ",") {
		u, err := parseServer(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		us = append(us, u)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return us, nil
}

// parseServer accepts an http or https URL with a host and no path beyond
// "/": the API paths are appended to it.
func parseServer(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s=%q: want https://HOST[:PORT]", agentapi.ParamServer, v)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("%s=%q: want https://HOST[:PORT] without path, query or user", agentapi.ParamServer, v)
	}
	u.Path, u.RawPath = "", ""
	return u, nil
}

func printableToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// cmdlineParams splits a kernel command line into name=value parameters
// the way the kernel does (lib/cmdline.c, next_arg): parameters are
// separated by spaces; double quotes group spaces into a value, either
// around the value (name="a b") or around the whole parameter ("name=a b"),
// and are removed; a parameter without "=" has the value ""; everything
// after a lone "--" belongs to init's argv and is not a parameter.
func cmdlineParams(s string) map[string]string {
	p := map[string]string{}
	for _, arg := range splitCmdline(s) {
		if arg == "--" {
			break
		}
		name, value, _ := strings.Cut(arg, "=")
		p[name] = value
	}
	return p
}

// splitCmdline splits on whitespace outside double quotes and drops the
// quotes. An unterminated quote runs to the end of the line, as in the
// kernel.
func splitCmdline(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote, inArg := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			inArg = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// redactCmdline returns the command line with the token's value replaced,
// for logs: the log goes to the appliance and to whoever reads the
// console, the token must not.
func redactCmdline(s string) string {
	args := splitCmdline(s)
	for i, a := range args {
		// Anywhere in the argument: a quoted one may hold spaces, and
		// the joined line must not show a token to a reader either.
		if j := strings.Index(a, agentapi.ParamToken+"="); j >= 0 {
			args[i] = a[:j] + agentapi.ParamToken + "=REDACTED"
		}
	}
	return strings.Join(args, " ")
}
