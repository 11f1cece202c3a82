package power

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Target is one machine's BMC as the daemon resolved it (the password
// already read from its credential file).
type Target struct {
	Protocol string // "ipmi" or "redfish"
	// Address of the BMC. ipmi: host or host:port (UDP, default 623).
	// redfish: a URL http(s)://host[:port], or host[:port] (https then).
	Address  string
	Username string
	Password string
	// System is the Redfish ComputerSystem Id; "" means the only system
	// (an error when the service has several).
	System string
	// InsecureTLS makes a Redfish https client accept a certificate that
	// does not verify: most BMCs ship a self-signed one.
	InsecureTLS bool
}

// Protocols of a Target.
const (
	ProtocolIPMI    = "ipmi"
	ProtocolRedfish = "redfish"
)

// State is a machine's power state as its BMC reports it.
type State string

const (
	StateOn      State = "on"
	StateOff     State = "off"
	StateUnknown State = "unknown" // not read, or a transitional state (Redfish PoweringOn/Off)
)

// Action is what Do and Run are asked to do.
type Action string

const (
	ActionStatus Action = "status"
	ActionOn     Action = "on"
	ActionOff    Action = "off"
	ActionCycle  Action = "cycle"
)

// ParseAction returns the Action named s, or an error of kind config.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionStatus, ActionOn, ActionOff, ActionCycle:
		return a, nil
	}
	return "", &Error{Op: "power " + s, Kind: KindConfig, Err: fmt.Errorf("unknown action %q (want status, on, off or cycle)", s)}
}

// Controller drives one machine's power through its BMC. Every method is one
// operation with a fresh session, bounded by ctx and by Config.Timeout, and
// returns nil or an *Error. A Controller is safe for concurrent use, though
// BMCs have few session slots: callers should not run many operations on one
// machine at once.
type Controller interface {
	// Status reads the power state.
	Status(ctx context.Context) (State, error)
	// On powers the machine on; a machine already on is left alone.
	On(ctx context.Context) error
	// Off is a hard power off (IPMI power down, Redfish ForceOff); a machine
	// already off is left alone.
	Off(ctx context.Context) error
	// Cycle powers a machine that is off on, and power-cycles one that is on
	// (IPMI power cycle; Redfish PowerCycle, or ForceRestart where the BMC
	// does not allow PowerCycle). Many BMCs refuse a cycle when off, so the
	// state is read first.
	Cycle(ctx context.Context) error
	// NetBootOnce asks for one network boot at the next power on or reset:
	// IPMI Set System Boot Options boot flags {valid, next boot only, PXE};
	// Redfish Boot {BootSourceOverrideTarget Pxe, BootSourceOverrideEnabled Once}.
	NetBootOnce(ctx context.Context) error
}

// Config bounds the operations. Its zero value means the defaults.
type Config struct {
	// Timeout bounds one whole operation (session setup, command, close),
	// and in Do the status polling after it. Default 20 s.
	Timeout time.Duration
	// Retries is how many times Do repeats an operation that failed with
	// KindTimeout or KindUnreachable. Never for auth errors: real BMCs lock
	// out users after a few failures. 0 means the default, 2; a negative
	// value means no retry.
	Retries int
	// PollInterval is the pause between status reads after on, off or
	// cycle. Default 500 ms.
	PollInterval time.Duration
}

// Defaults of Config.
const (
	DefaultTimeout      = 20 * time.Second
	DefaultRetries      = 2
	DefaultPollInterval = 500 * time.Millisecond
)

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	return c
}

// New returns the Controller for t. It validates t and touches no network;
// its errors are of kind config.
func New(t Target, cfg Config) (Controller, error) {
	cfg = cfg.withDefaults()
	bad := func(format string, args ...any) error {
		return &Error{Op: "power config", Kind: KindConfig, Err: Redact(fmt.Errorf(format, args...), t.Password)}
	}
	switch strings.ToLower(t.Protocol) {
	case ProtocolIPMI:
		host, port, err := ipmiHostPort(t.Address)
		if err != nil {
			return nil, bad("ipmi address %q: %w", t.Address, err)
		}
		if t.Username == "" {
			return nil, bad("ipmi: no user name")
		}
		if len(t.Username) > 16 {
			return nil, bad("ipmi: user name longer than 16 characters")
		}
		if len(t.Password) > 20 {
			return nil, bad("ipmi: password longer than 20 characters")
		}
		return &ipmiController{t: t, host: host, port: port, cfg: cfg}, nil
	case ProtocolRedfish:
		endpoint, err := redfishEndpoint(t.Address)
		if err != nil {
			return nil, bad("redfish address %q: %w", t.Address, err)
		}
		if t.Username == "" {
			return nil, bad("redfish: no user name")
		}
		return &redfishController{t: t, endpoint: endpoint, cfg: cfg}, nil
	case "":
		return nil, bad("no protocol (want ipmi or redfish)")
	}
	return nil, bad("unknown protocol %q (want ipmi or redfish)", t.Protocol)
}

// ipmiHostPort splits an IPMI address; the port defaults to 623 (RMCP, IPMI
// 2.0 §13.1.1).
func ipmiHostPort(addr string) (string, int, error) {
	if addr == "" {
		return "", 0, fmt.Errorf("empty")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a bare host name or IPv4/IPv6 address.
		if strings.Contains(addr, "/") || strings.Count(addr, ":") == 1 {
			return "", 0, err
		}
		return strings.Trim(addr, "[]"), 623, nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	if host == "" {
		return "", 0, fmt.Errorf("no host")
	}
	return host, port, nil
}

// redfishEndpoint normalises a Redfish address to scheme://host[:port].
func redfishEndpoint(addr string) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("empty")
	}
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("scheme %q (want http or https)", u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("no host")
	}
	if u.User != nil {
		return "", fmt.Errorf("credentials in the URL (use the user name and password file)")
	}
	if u.Path != "" && u.Path != "/" && u.Path != "/redfish/v1" && u.Path != "/redfish/v1/" {
		return "", fmt.Errorf("path %q (give the BMC's address; the service root is /redfish/v1/)", u.Path)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Closing a session (IPMI Close Session, Redfish DELETE of the session) is
// worth a little time even when the operation failed: BMCs have a handful
// of session slots, and one left open is held until the BMC's idle timeout.
const (
	cleanupTimeout        = 2 * time.Second        // the operation went well: the BMC answers
	cleanupTimeoutExpired = 500 * time.Millisecond // the deadline passed: one short try
)

// cleanupContext returns the context to close a session with: detached
// from ctx (which may have ended), with its own short deadline. An
// operation can so outlast Config.Timeout by at most cleanupTimeoutExpired.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := cleanupTimeout
	if ctx.Err() != nil {
		d = cleanupTimeoutExpired
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
