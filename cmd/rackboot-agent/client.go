package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/imaging"
)

// The wire format is package agentapi's, shared with the appliance; the
// test against a real api.Server checks the two ends speak it alike.

// Bounds of what the agent reads from the appliance.
const (
	maxPlanBytes  = 16 << 20 // a plan carries the config drive's files
	maxErrorBytes = agentapi.MaxErrorBytes
)

// apiError is an answer other than 2xx.
type apiError struct {
	Status int
	Msg    string // the body's "error", or the status text
}

func (e *apiError) Error() string {
	return fmt.Sprintf("appliance answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// unauthorized reports whether err is the appliance refusing the install
// token: a token that expired, was spent by an earlier attempt, or belongs
// to another MAC. Nothing the agent does with it can succeed any more.
func unauthorized(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized
}

// retryable reports whether a failed request may succeed if sent again:
// network errors, timeouts and the appliance's own failures (5xx, 429)
// may; its refusals (other 4xx) will not.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	// A server the CA does not vouch for stays one: the console says so
	// at once instead of after the retries.
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return false
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	return true
}

// client speaks the appliance's agent API for one MAC and token.
type client struct {
	base  *url.URL
	mac   string
	token string
	hc    *http.Client
}

// requestTimeout bounds every API request. The API's answers are small;
// the image download does not go through this client.
const requestTimeout = 30 * time.Second

// newClient returns the client of cfg's appliance. roots is the CA an https
// appliance is verified against, the only one (see loadCA); nil for an
// http one.
func newClient(cfg config, roots *x509.CertPool) *client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &client{base: cfg.Server, mac: cfg.MAC.String(), token: cfg.Token,
		hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

// authHeader is what every agent request carries; the image download
// carries it too when the image is on the appliance.
func (c *client) authHeader() http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+c.token)
	h.Set(agentapi.MACHeader, c.mac)
	h.Set("User-Agent", "rackboot-agent")
	return h
}

// sameOrigin reports whether raw is on the appliance (same scheme, host
// and port), so that the install token may be sent with it: an image on
// another server must not learn it, nor may it cross in clear to the
// appliance's plain HTTP port, where images are served while the API is
// on HTTPS.
func (c *client) sameOrigin(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && strings.EqualFold(u.Scheme, c.base.Scheme) && strings.EqualFold(u.Host, c.base.Host)
}

// imageSource is the Opener of a plan's image: an HTTP download that
// resumes with Range requests, carrying the install token when the image
// is on the appliance.
func (c *client) imageSource(img agentapi.Image) imaging.Opener {
	src := &imaging.HTTPSource{URL: img.URL}
	if c.sameOrigin(img.URL) {
		src.Header = c.authHeader()
	}
	return src.Open
}

// chunkStore is where a chunked image's index and chunks come from,
// carrying the install token when all of them are on the appliance.
func (c *client) chunkStore(img agentapi.Image) imaging.ChunkStore {
	return &imaging.HTTPChunks{Base: img.Chunks, Header: c.chunkHeader(img)}
}

// chunkHeader is what requests for img's chunks and indexes carry: the
// install token when all of them are on the appliance, else nothing.
func (c *client) chunkHeader(img agentapi.Image) http.Header {
	if c.sameOrigin(img.Chunks) && c.sameOrigin(img.URL) && (img.Seed == nil || c.sameOrigin(img.Seed.URL)) {
		return c.authHeader()
	}
	return nil
}

func (c *client) plan(ctx context.Context) (*agentapi.PlanResponse, error) {
	var p agentapi.PlanResponse
	if err := c.do(ctx, http.MethodGet, agentapi.PathPlan, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (c *client) progress(ctx context.Context, p agentapi.Progress) error {
	return c.do(ctx, http.MethodPost, agentapi.PathProgress, p, nil)
}

func (c *client) log(ctx context.Context, lines []string) error {
	return c.do(ctx, http.MethodPost, agentapi.PathLog, agentapi.Log{Lines: lines}, nil)
}

func (c *client) done(ctx context.Context, d agentapi.Done) (agentapi.Result, error) {
	var r agentapi.Result
	err := c.do(ctx, http.MethodPost, agentapi.PathDone, d, &r)
	return r, err
}

func (c *client) failed(ctx context.Context, f agentapi.Failed) (agentapi.Result, error) {
	var r agentapi.Result
	err := c.do(ctx, http.MethodPost, agentapi.PathFailed, f, &r)
	return r, err
}

// do sends one request with a JSON body (unless in is nil) and decodes a
// 2xx answer's JSON into out (unless out is nil). Any other answer is an
// *apiError with the appliance's message.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath(path).String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header = c.authHeader()
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, readAPIError(resp))
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes)) // keep the connection reusable
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxPlanBytes)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func readAPIError(resp *http.Response) *apiError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var e struct {
		Error string `json:"error"`
	}
	msg := http.StatusText(resp.StatusCode)
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return &apiError{Status: resp.StatusCode, Msg: msg}
}
