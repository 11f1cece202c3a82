package ipxe

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/rackboot/rackboot/profiles"
)

// Handler serves /boot.ipxe and /ipxe. Mount it at both paths of the
// appliance's root: /boot.ipxe chains an absolute URL ending in /ipxe. Its
// fields are read-only once it serves; it is safe for concurrent use as long
// as Hosts is.
type Handler struct {
	// Hosts is the fleet the per-machine script is decided from. Nil knows
	// no host.
	Hosts Hosts
	// Discovery lets machines unknown to Hosts boot its default installer.
	// Off, they are told they are unknown and exit.
	Discovery bool
	// Advertise is the host name or IP address, optionally with a port,
	// that scripts point machines at. Empty means the local address of the
	// connection the request came in on: the address the machine already
	// reached. The Host header is never used: the client chooses it.
	Advertise string
	// Port is the port of the URLs scripts point at. Zero means the port
	// in Advertise, else the local port of the connection.
	Port int
	// APIPort is the HTTPS port of the agent API on the same host: the
	// installer is handed https://HOST:APIPORT as rackboot.server=. Zero
	// hands it the scripts' own plain HTTP URL.
	APIPort int
	// CA is the path, on the scripts' URL, of the archive carrying the CA
	// the agent verifies the API against (Appliance.CA). Empty: none.
	CA string
	// PeerAPIs, if set, returns the agent API origins of the other
	// appliances sharing this one's registry, such as
	// "https://192.0.2.2:8443" (Appliance.Peers); it is called once per
	// per-machine script, so the list follows appliances coming and
	// going, and must not block. Nil: none.
	PeerAPIs func() []string
	// Log receives one line per request. Nil discards.
	Log *slog.Logger
	// Lifecycle, if set, makes the per-machine script follow the machine's
	// install state: installer with a token, local disk, or nothing (see
	// Follow). Nil boots what the profiles say, without a token. A HEAD
	// request never consults it: only a GET may change a machine's state.
	Lifecycle Lifecycle
	// Verify, if set, decides whether a script request may speak for the
	// machine it names: the appliance checks the requester's link-layer
	// address against the MAC (docs/DESIGN.md §7). A request it refuses
	// gets a script that boots nothing, never consults the Lifecycle (no
	// token, no state change) and is logged with the error. Nil believes
	// every request.
	Verify func(r *http.Request, mac net.HardwareAddr) error
	// OnScript, if set, is called once per per-machine script served, with
	// the machine's MAC and the Outcome constant, for metrics and state.
	// It runs on the request's goroutine and must not block.
	OnScript func(mac net.HardwareAddr, outcome string)

	scripts renderCache
}

// ServeHTTP serves GET and HEAD of /boot.ipxe and /ipxe; other paths are
// 404 and other methods 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/boot.ipxe" && r.URL.Path != "/ipxe" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "rackboot: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	log := &requestLog{h: h, r: r}
	base, err := h.base(r)
	if err != nil {
		log.log(slog.LevelError, "cannot build the server URL", "err", err)
		http.Error(w, "rackboot: server URL misconfigured, see the rackboot log", http.StatusInternalServerError)
		return
	}
	if r.URL.Path == "/boot.ipxe" {
		s, err := BootScript(base)
		if err != nil { // unreachable: base passed the same check
			log.log(slog.LevelError, "cannot render boot.ipxe", "err", err)
			http.Error(w, "rackboot: internal error", http.StatusInternalServerError)
			return
		}
		log.log(slog.LevelInfo, "boot script served", "server", base)
		writeScript(w, s)
		return
	}
	h.serveScript(w, r, log, base)
}

func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request, log *requestLog, base string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		err = errors.New("malformed query")
	}
	var f Facts
	if err == nil {
		f, err = ParseFacts(q)
	}
	if err != nil {
		log.log(slog.LevelWarn, "bad script request", "outcome", "bad-request", "err", err)
		http.Error(w, "rackboot: bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	d := Decide(f, h.Hosts, h.Discovery)
	log.facts, log.host = &f, d.Host
	if h.Verify != nil {
		if err := h.Verify(r, f.MAC); err != nil {
			log.log(slog.LevelWarn, "script request not from the machine it names: no token, no state change", "outcome", OutcomeUnverified, "err", err)
			d = Decision{Outcome: OutcomeUnverified} // not even the hostname for a stranger
		}
	}
	if h.Lifecycle != nil && r.Method == http.MethodGet && d.Outcome != OutcomeUnverified {
		s, err := h.Lifecycle.Boot(r.Context(), f, d.Host)
		if err != nil {
			// Neither the installer (it could wipe an installed
			// machine) nor the disk (it could be half-written): the
			// script exits and the firmware decides.
			log.log(slog.LevelError, "cannot read the machine's install state", "err", err)
			d = Decision{Outcome: OutcomeStateError, Host: d.Host}
		} else {
			d = Follow(d, s)
		}
	}
	s, err := h.scripts.render(h.appliance(base), f, d)
	if err != nil {
		d.Outcome = OutcomeRefused
		s = refusal(f)
		log.log(slog.LevelError, "script refused", "outcome", d.Outcome, "err", err)
	} else {
		log.log(slog.LevelInfo, "script served", "outcome", d.Outcome)
	}
	writeScript(w, s)
	if h.OnScript != nil {
		h.OnScript(f.MAC, d.Outcome)
	}
}

// requestLog writes a request's log lines with its attributes, formatting
// them only for a line that is written: at the usual level a served script
// writes none, and formatting was a tenth of its cost.
type requestLog struct {
	h     *Handler
	r     *http.Request
	facts *Facts         // once parsed
	host  *profiles.Host // once looked up, if known
}

func (l *requestLog) log(level slog.Level, msg string, args ...any) {
	lg := l.h.log()
	if !lg.Enabled(l.r.Context(), level) {
		return
	}
	attrs := []any{"ip", remoteIP(l.r), "path", l.r.URL.Path}
	if f := l.facts; f != nil {
		attrs = append(attrs, "mac", f.MAC.String(), "arch", f.Arch, "platform", f.Platform, "uuid", f.UUID)
	}
	if l.host != nil {
		attrs = append(attrs, "host", l.host.Hostname)
	}
	lg.Log(l.r.Context(), level, msg, append(attrs, args...)...)
}

func writeScript(w http.ResponseWriter, s string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(len(s)))
	hd.Set("X-Content-Type-Options", "nosniff")
	// A script is a decision of this moment (the host may be reinstalled
	// or removed next); nothing may cache it.
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(s)) // a failed write is the client gone; nothing to do
}

// base is the URL machines reach the appliance at.
func (h *Handler) base(r *http.Request) (string, error) {
	var local netip.AddrPort
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := a.(*net.TCPAddr); ok {
			local = ta.AddrPort()
		}
	}
	var host string
	var port uint16
	if h.Advertise != "" {
		host = h.Advertise
		if hh, pp, err := net.SplitHostPort(h.Advertise); err == nil {
			p, err := strconv.ParseUint(pp, 10, 16)
			if err != nil {
				return "", fmt.Errorf("advertise %q: bad port", h.Advertise)
			}
			host, port = hh, uint16(p)
		}
		if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1] // "[2001:db8::1]" without a port
		}
	} else {
		if !local.IsValid() {
			return "", errors.New("no local address on the request and no advertise address configured")
		}
		// A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d, and
		// a zone (fe80::1%eth0) means nothing to the machine.
		host = local.Addr().Unmap().WithZone("").String()
	}
	if h.Port != 0 {
		if h.Port < 0 || h.Port > 65535 {
			return "", fmt.Errorf("port %d out of range", h.Port)
		}
		port = uint16(h.Port)
	}
	if port == 0 {
		port = local.Port()
	}
	hostport := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if port == 80 || port == 0 {
		hostport = host
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
			hostport = "[" + host + "]"
		}
	}
	base := "http://" + hostport
	if err := checkBase(base); err != nil {
		return "", err
	}
	return base, nil
}

// appliance completes base, the plain URL machines reach the appliance at,
// with the agent API's HTTPS URL on the same host, the other appliances'
// and the CA archive.
// Render validates the result.
func (h *Handler) appliance(base string) Appliance {
	a := Appliance{Base: base, CA: h.CA}
	if h.PeerAPIs != nil {
		a.Peers = h.PeerAPIs()
	}
	if h.APIPort != 0 {
		if u, err := url.Parse(base); err == nil {
			a.API = "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(h.APIPort))
		}
	}
	return a
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// remoteIP is the client's address without its port, for logs.
func remoteIP(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return ap.Addr().Unmap().String()
}
