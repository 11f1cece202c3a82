package main

// The admin commands (hosts, versions, history, reinstall, logs, watch) are
// clients of the daemon's admin API (api/README.md): they hold no state of
// their own, so they work the same on the appliance and from an admin's
// laptop with --server and RACKBOOT_TOKEN.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/pki"
	"github.com/rackboot/rackboot/profiles"
)

// Defaults of the admin commands: the daemon's own defaults, so that on the
// appliance itself no flag is needed.
const (
	defaultServer  = "https://127.0.0.1:8443"
	defaultDataDir = "/var/lib/rackboot"
)

// Timeouts of the admin client. A request answers from the registry in
// milliseconds; requestTimeout only ends a hung daemon. Streams (watch, logs
// -f) have no overall timeout, but their connection and response headers
// do.
const (
	requestTimeout = 30 * time.Second
	dialTimeout    = 5 * time.Second
	headerTimeout  = 15 * time.Second
)

// cli is what the admin commands take from their process: output, the
// environment, the clock and the terminal. Tests replace each.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// loc is the time zone times are printed in.
	loc *time.Location
	now func() time.Time
	// user names who asks, recorded with reinstall requests.
	user string
	// terminal reports whether stdout is a terminal, and its size.
	terminal func() (width, height int, ok bool)
	// stdin answers questions; interactive reports whether it is a
	// terminal, where a person can answer (nil: it is not).
	stdin       io.Reader
	interactive func() bool
}

func newCLI(stdout, stderr io.Writer) *cli {
	c := &cli{stdout: stdout, stderr: stderr, getenv: os.Getenv, loc: time.Local, now: time.Now,
		stdin: os.Stdin, interactive: func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }}
	if u, err := user.Current(); err == nil {
		c.user = u.Username
	}
	c.terminal = func() (int, int, bool) {
		f, ok := stdout.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return 0, 0, false
		}
		w, h, err := term.GetSize(int(f.Fd()))
		if err != nil || w <= 0 || h <= 0 {
			w, h = 80, 24
		}
		return w, h, true
	}
	return c
}

// flagSet returns a flag set for an admin command, with --server and
// --data.
func (c *cli) flagSet(name, usage string) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	cf := &clientFlags{}
	fs.StringVar(&cf.server, "server", "", "`URL` of the rackboot daemon (default $RACKBOOT_SERVER, else "+defaultServer+")")
	fs.StringVar(&cf.data, "data", "", "rackboot's data `dir`ectory, holding admin.token (default: $RACKBOOT_TOKEN if set, else "+defaultDataDir+")")
	fs.StringVar(&cf.ca, "ca", "", "PEM `file` of the CA the daemon's certificate is checked against (default $RACKBOOT_CA, else DATA/tls/ca.pem)")
	return fs, cf
}

// clientFlags are the flags every admin command has.
type clientFlags struct {
	server string
	data   string
	ca     string
}

// client builds the admin client the flags and the environment name.
// --server wins over RACKBOOT_SERVER; an explicit --data wins over
// RACKBOOT_TOKEN, which wins over the default data directory.
func (c *cli) client(f *clientFlags) (*adminClient, error) {
	server := f.server
	if server == "" {
		server = c.getenv("RACKBOOT_SERVER")
	}
	if server == "" {
		server = defaultServer
	}
	base, err := serverURL(server)
	if err != nil {
		return nil, err
	}
	cl := &adminClient{base: base}
	pool, err := c.trust(f)
	if err != nil {
		return nil, err
	}
	if tok := strings.TrimSpace(c.getenv("RACKBOOT_TOKEN")); tok != "" && f.data == "" {
		cl.token, cl.tokenFrom = tok, "$RACKBOOT_TOKEN"
	} else {
		dir := f.data
		if dir == "" {
			dir = defaultDataDir
		}
		cl.tokenFrom = filepath.Join(dir, api.AdminTokenFile)
		if cl.token, err = api.ReadAdminToken(dir); err != nil {
			return nil, fmt.Errorf("cannot read the admin token: %w\n(run as the user rackboot serve runs as, give its --data DIR, or set RACKBOOT_TOKEN)", err)
		}
	}
	// Streams must outlive any overall timeout, but not a daemon that
	// never accepts or never answers.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = headerTimeout
	// The appliance's CA is the only root: a public CA has no say over
	// who is the appliance.
	tr.TLSClientConfig = &tls.Config{RootCAs: pool.CertPool, MinVersion: tls.VersionTLS12}
	cl.caFrom = pool.from
	cl.http = &http.Client{Transport: tr, Timeout: requestTimeout}
	cl.stream = &http.Client{Transport: tr}
	return cl, nil
}

// serverURL checks a --server value; a bare host:port means https. Plain
// http is refused: the daemon serves the API over HTTPS only, and the
// admin token must not cross the network in clear on the way to learning
// that (docs/DESIGN.md, section 7, "TLS").
func serverURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err == nil && u.Scheme == "http" {
		return "", fmt.Errorf("--server %q: the rackboot API is served over HTTPS only (--https-port, 8443 by default), and the admin token is never sent in clear", s)
	}
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--server %q: want a URL such as %s", s, defaultServer)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// trustPool is the CA the daemon is verified against, and its file.
type trustPool struct {
	*x509.CertPool
	from string
}

// trust reads the CA: --ca, else $RACKBOOT_CA, else DATA/tls/ca.pem of
// --data or the default data directory (the appliance's own).
func (c *cli) trust(f *clientFlags) (trustPool, error) {
	file := f.ca
	if file == "" {
		file = c.getenv("RACKBOOT_CA")
	}
	if file == "" {
		dir := f.data
		if dir == "" {
			dir = defaultDataDir
		}
		file = filepath.Join(dir, tlsDir, pki.CAFile)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return trustPool{}, fmt.Errorf("cannot read the appliance's CA: %w\n(on the appliance it is DATA/tls/ca.pem; elsewhere copy that file and give --ca FILE or set RACKBOOT_CA)", err)
	}
	pool, err := pki.Pool(file, b)
	if err != nil {
		return trustPool{}, err
	}
	return trustPool{pool, file}, nil
}

// adminClient calls the admin API with the admin token.
type adminClient struct {
	base string // no trailing slash
	// token is the admin token; tokenFrom says where it came from, for
	// the message of a 401.
	token, tokenFrom string
	// caFrom is the file of the CA the daemon is checked against, for
	// the message of a certificate that does not verify.
	caFrom string
	http   *http.Client // requests
	stream *http.Client // streams: no overall timeout
}

// apiError is an answer of the admin API other than success.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Msg) }

// do sends a request and returns the response of a 2xx answer; the caller
// closes its body. Every other outcome is an error a person can act on.
func (cl *adminClient) do(ctx context.Context, hc *http.Client, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, cl.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in our message already
		}
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return nil, fmt.Errorf("the server at %s is not the appliance of the CA in %s: %w\n(nothing was sent; if the appliance was reinstalled or its certificate replaced, copy its DATA/tls/ca.pem again)", cl.base, cl.caFrom, cv.Err)
		}
		return nil, fmt.Errorf("cannot reach rackboot at %s: is `rackboot serve` running? (%w)", cl.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, &apiError{Status: resp.StatusCode, Msg: "wrong or missing admin token — read from " + cl.tokenFrom}
	}
	var e struct {
		Error string `json:"error"`
	}
	msg := http.StatusText(resp.StatusCode)
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	} else if resp.StatusCode == http.StatusNotFound {
		msg = "not found: is " + cl.base + " a rackboot daemon of this version?"
	}
	return nil, &apiError{Status: resp.StatusCode, Msg: msg}
}

// raw returns the body of a GET.
func (cl *adminClient) raw(ctx context.Context, path string) ([]byte, error) {
	b, _, err := cl.rawHeader(ctx, path)
	return b, err
}

// rawHeader returns the body and the header of a GET.
func (cl *adminClient) rawHeader(ctx context.Context, path string) ([]byte, http.Header, error) {
	resp, err := cl.do(ctx, cl.http, http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer of %s: %w", path, err)
	}
	return b, resp.Header, nil
}

// get decodes the JSON answer of a GET into out and returns its bytes.
func (cl *adminClient) get(ctx context.Context, path string, out any) ([]byte, error) {
	b, err := cl.raw(ctx, path)
	if err != nil {
		return nil, err
	}
	return b, decodeAnswer(path, b, out)
}

// decodeAnswer decodes the JSON answer b of path into out.
func decodeAnswer(path string, b []byte, out any) error {
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the answer of %s is not what this rackboot expects: %w", path, err)
	}
	return nil
}

// post sends in as JSON and decodes the answer into out.
func (cl *adminClient) post(ctx context.Context, path string, in, out any) error {
	return cl.send(ctx, http.MethodPost, path, in, out)
}

// postLong is post for a request the daemon may take minutes to answer
// (power actions paced over a rack): no overall timeout but ctx's.
func (cl *adminClient) postLong(ctx context.Context, path string, in, out any) error {
	resp, err := cl.do(ctx, cl.stream, http.MethodPost, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("the answer of POST %s is not what this rackboot expects: %w", path, err)
	}
	return nil
}

// send makes a request of method with in as its JSON body (nil: none) and
// decodes the answer into out.
func (cl *adminClient) send(ctx context.Context, method, path string, in, out any) error {
	resp, err := cl.do(ctx, cl.http, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("the answer of %s %s is not what this rackboot expects: %w", method, path, err)
	}
	return nil
}

// open starts a stream: an event stream or a followed log. It ends with
// ctx.
func (cl *adminClient) open(ctx context.Context, path string) (io.ReadCloser, error) {
	resp, err := cl.do(ctx, cl.stream, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// hosts lists the hosts of the fleet matching q (nil: all), following the
// pages of /api/hosts (the Link rel="next" header) to the last. raw is the
// JSON of the whole list.
func (cl *adminClient) hosts(ctx context.Context, q url.Values) ([]api.HostView, []byte, error) {
	path := "/api/hosts"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var all []api.HostView
	var raw []byte
	pages := 0
	for ; path != ""; pages++ {
		b, h, err := cl.rawHeader(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		var page []api.HostView
		if err := decodeAnswer(path, b, &page); err != nil {
			return nil, nil, err
		}
		all, raw = append(all, page...), b
		if path, err = nextPage(h.Get("Link")); err != nil {
			return nil, nil, err
		}
	}
	if pages > 1 { // raw is the last page's alone
		var err error
		if raw, err = json.Marshal(all); err != nil {
			return nil, nil, err
		}
	}
	return all, raw, nil
}

// nextPage is the path of the next page from a Link header of /api/hosts
// (RFC 8288), or "" when there is none. Only a path of /api/hosts is
// followed: the token goes nowhere else.
func nextPage(link string) (string, error) {
	if link == "" {
		return "", nil
	}
	for l := range strings.SplitSeq(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(l), ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		path := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(target), "<"), ">")
		if !strings.HasPrefix(path, "/api/hosts?") {
			return "", fmt.Errorf("the next page %.100q is not a page of /api/hosts", path)
		}
		return path, nil
	}
	return "", nil
}

// forgetDiscovered asks the daemon to forget its discovered records and
// returns how many it forgot.
func (cl *adminClient) forgetDiscovered(ctx context.Context) (int, error) {
	var res api.ForgetResult
	if err := cl.send(ctx, http.MethodDelete, "/api/hosts?state=discovered", nil, &res); err != nil {
		return 0, err
	}
	return res.Forgotten, nil
}

// resolve turns a command-line argument naming a host, a MAC in any common
// spelling or a hostname of the profiles, into its MAC.
func (cl *adminClient) resolve(ctx context.Context, arg string) (string, error) {
	if mac, err := parseMAC(arg); err == nil {
		return mac, nil
	}
	hs, _, err := cl.hosts(ctx, nil)
	if err != nil {
		return "", err
	}
	return findHost(hs, arg)
}

// findHost finds the host arg names, a MAC or a hostname, among hs. A MAC
// need not be among them: the API says whether it knows it.
func findHost(hs []api.HostView, arg string) (string, error) {
	if mac, err := parseMAC(arg); err == nil {
		return mac, nil
	}
	for _, h := range hs {
		if h.Hostname == arg {
			return h.MAC, nil
		}
	}
	return "", fmt.Errorf("%q is neither a MAC address nor the hostname of a known host", arg)
}

// parseMAC returns mac in the registry's spelling: lower case, colons.
func parseMAC(s string) (string, error) {
	hw, err := profiles.ParseMAC(s)
	if err != nil {
		return "", err
	}
	return hw.String(), nil
}

// writeJSON prints an API answer as it came, indented.
func writeJSON(w io.Writer, b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(b), "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// fail prints the error of an admin command and returns its exit code: 1,
// or 130 when the command was interrupted.
func (c *cli) fail(cmd string, err error) int {
	if errors.Is(err, context.Canceled) {
		return 130
	}
	fmt.Fprintf(c.stderr, "rackboot %s: %v\n", cmd, err)
	return 1
}
