package power

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"syscall"

	ipmiclient "github.com/bougou/go-ipmi/pkg/client"
	"github.com/stmcginnis/gofish/common"
)

// Kind classifies an Error by what the operator has to do about it.
type Kind string

const (
	// KindAuth: the BMC refused the user name or password. Never retried:
	// real BMCs lock a user out after a few failures.
	KindAuth Kind = "auth"
	// KindUnreachable: nothing answers at the address (connection refused,
	// no route, unknown host).
	KindUnreachable Kind = "unreachable"
	// KindTimeout: the BMC did not answer within the deadline (or the
	// caller cancelled). A host that is down without an ICMP refusal looks
	// like this too.
	KindTimeout Kind = "timeout"
	// KindTLS: the BMC's certificate does not verify.
	KindTLS Kind = "tls"
	// KindBMC: the BMC answered but refused or failed the request.
	KindBMC Kind = "bmc"
	// KindConfig: the Target or the request is wrong; no network was used.
	KindConfig Kind = "config"
)

var kindText = map[Kind]string{
	KindAuth:        "the BMC refused the user name or password",
	KindUnreachable: "nothing answers at the BMC's address",
	KindTimeout:     "the BMC did not answer in time",
	KindTLS:         "the BMC's certificate does not verify (a self-signed BMC needs insecure TLS)",
	KindBMC:         "the BMC refused or failed the request",
	KindConfig:      "bad BMC configuration",
}

// Error is every error the package returns. Its text reads like
// "power cycle: auth: the BMC refused the user name or password (detail)";
// the detail has been through Redact with the password.
type Error struct {
	Op   string // "power on", "power status", "power netboot", …
	Kind Kind
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(string(e.Kind))
	if t, ok := kindText[e.Kind]; ok {
		b.WriteString(": ")
		b.WriteString(t)
	}
	if e.Err != nil {
		// go-ipmi spreads some errors over lines; one line logs better.
		b.WriteString(" (")
		b.WriteString(strings.Join(strings.Fields(e.Err.Error()), " "))
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err's *Error, or "" when err is nil or no
// *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// redacted carries the redacted text of an error; Unwrap keeps errors.Is
// (context.DeadlineExceeded, …) working on the original.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Redact returns err with every occurrence of each non-empty secret (and
// of its URL-escaped form) in its text replaced by "[redacted]". An *Error
// stays an *Error (its Err is redacted). Neither go-ipmi nor gofish was
// seen putting the password into an error; this is defence in depth.
func Redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		return &Error{Op: redactString(e.Op, secrets), Kind: e.Kind, Err: Redact(e.Err, secrets...)}
	}
	msg := err.Error()
	clean := redactString(msg, secrets)
	if clean == msg {
		return err
	}
	return &redacted{msg: clean, err: err}
}

func redactString(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		s = strings.ReplaceAll(s, secret, "[redacted]")
		if esc := url.QueryEscape(secret); esc != secret {
			s = strings.ReplaceAll(s, esc, "[redacted]")
		}
		if esc := url.PathEscape(secret); esc != secret {
			s = strings.ReplaceAll(s, esc, "[redacted]")
		}
	}
	return s
}

// wrap turns a library error into an *Error of op, classified and redacted.
func wrap(op string, err error, password string) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		if e.Op == "" {
			e = &Error{Op: op, Kind: e.Kind, Err: e.Err}
		}
		return Redact(e, password)
	}
	return &Error{Op: op, Kind: classify(err), Err: Redact(err, password)}
}

// classify maps an error of go-ipmi, gofish or net/http to a Kind, by type
// where the libraries keep one and by text where they do not (gofish's
// collection errors and go-ipmi's wrapped errors are strings). The rules
// are the ones measured in docs/bmc-groundwork.md §4.
// httpAuthStatus finds gofish's "401: …" in a collection error's text,
// not a port number ending in 401 ("127.0.0.1:45401: connect: …").
var httpAuthStatus = regexp.MustCompile(`(^|[^0-9:])40[13]: `)

func classify(err error) Kind {
	if k := KindOf(err); k != "" {
		return k
	}
	text := err.Error()
	lower := strings.ToLower(text)

	// Auth. gofish: *common.Error with the HTTP status (sessions), or its
	// text "401: …" inside a collection error (Basic auth). go-ipmi: a RAKP
	// mismatch (wrong password) or RMCP+ status "Unauthorized name" (wrong
	// user). Over IPMI 1.5 a wrong password makes ipmi_sim drop Activate
	// Session: a timeout there means auth (groundwork §2 item 7).
	// A gofish HTTP error means the BMC answered: its status decides,
	// whatever words its body holds.
	var ce *common.Error
	if errors.As(err, &ce) && ce.HTTPReturnedStatusCode != 0 {
		if ce.HTTPReturnedStatusCode == 401 || ce.HTTPReturnedStatusCode == 403 {
			return KindAuth
		}
		return KindBMC
	}
	if errors.Is(err, ipmiclient.ErrRAKPAuthentication) ||
		httpAuthStatus.MatchString(text) ||
		strings.Contains(lower, "unauthorized name") || strings.Contains(lower, "authentication code mismatch") ||
		strings.Contains(lower, "invalid credentials") {
		return KindAuth
	}
	if strings.Contains(text, "ActivateSession") || strings.Contains(text, "GetSessionChallenge") {
		return KindAuth
	}

	// TLS verification (a handshake timeout is a timeout, below).
	var uae x509.UnknownAuthorityError
	var cie x509.CertificateInvalidError
	var hne x509.HostnameError
	var cve *tls.CertificateVerificationError
	if errors.As(err, &uae) || errors.As(err, &cie) || errors.As(err, &hne) || errors.As(err, &cve) ||
		strings.Contains(text, "x509: ") || strings.Contains(text, "tls: failed to verify") {
		return KindTLS
	}

	// Timeout, and cancellation by the caller.
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		(errors.As(err, &ne) && ne.Timeout()) ||
		strings.Contains(lower, "deadline exceeded") || strings.Contains(lower, "timeout") ||
		strings.Contains(lower, "timed out") || strings.Contains(lower, "context canceled") ||
		strings.Contains(lower, "no matching ipmi response") {
		return KindTimeout
	}

	// Unreachable.
	var dnsErr *net.DNSError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &dnsErr) ||
		strings.Contains(lower, "connection refused") || strings.Contains(lower, "no route to host") ||
		strings.Contains(lower, "network is unreachable") || strings.Contains(lower, "no such host") ||
		strings.Contains(lower, "connection reset") {
		return KindUnreachable
	}
	if strings.Contains(lower, "tls:") {
		return KindTLS
	}
	return KindBMC
}
