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
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rackboot/rackboot/agentapi"
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

// client speaks the agent API for one MAC and token to the appliances of
// the kernel command line. Requests go to one of them at a time, the
// serving appliance first; a request that fails with a retryable error
// moves this request and the later ones to the next appliance, round
// robin (failover): the install token is valid at every appliance of the
// fleet, which share one registry (docs/DESIGN.md, "Several appliances").
type client struct {
	servers []*url.URL // the appliances, the serving one first
	mac     string
	token   string
	hc      *http.Client
	logger  *slog.Logger

	mu  sync.Mutex
	cur int // index in servers of the appliance requests go to
}

// requestTimeout bounds every API request. The API's answers are small;
// the image download does not go through this client.
const requestTimeout = 30 * time.Second

// newClient returns the client of cfg's appliances, logging failovers to
// log. roots is the CA an https appliance is verified against, the only
// one (see loadCA); nil for http ones.
func newClient(cfg config, roots *x509.CertPool, log *slog.Logger) *client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &client{servers: cfg.Servers, mac: cfg.MAC.String(), token: cfg.Token, logger: log,
		hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

// server returns the appliance requests go to now, and its index for
// failover.
func (c *client) server() (int, *url.URL) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur, c.servers[c.cur]
}

// failover moves the requests from servers[i], which failed with err, to
// the next appliance, and logs it. Requests that failed at once on the
// same appliance move them once: a failover another one did already
// stands. With one appliance it does nothing.
func (c *client) failover(i int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.servers) < 2 || c.cur != i {
		return
	}
	c.cur = (i + 1) % len(c.servers)
	c.logger.Warn(fmt.Sprintf("appliance %s unreachable (%v); going on with %s", c.servers[i], err, c.servers[c.cur]))
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

// log posts a batch of log lines. Sent again to the next appliance, the
// batch says so (agentapi.Log.Again): the first may have stored it.
func (c *client) log(ctx context.Context, l agentapi.Log) error {
	again := l
	again.Again = true
	return c.send(ctx, http.MethodPost, agentapi.PathLog, l, again, nil)
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
// *apiError with the appliance's message. A retryable failure is sent
// again at once to the next appliance, each appliance tried at most once,
// while ctx lasts; the caller's backoff paces further tries.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	return c.send(ctx, method, path, in, in, out)
}

// send is do with the body again sent instead of in to the appliances
// after the first.
func (c *client) send(ctx context.Context, method, path string, in, again, out any) error {
	var err error
	for try := range c.servers {
		body := in
		if try > 0 {
			body = again
		}
		var b []byte
		if body != nil {
			if b, err = json.Marshal(body); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
		}
		i, server := c.server()
		err = c.doAt(ctx, server, method, path, b, out)
		if err == nil || !retryable(err) {
			return err
		}
		// The caller's deadline passing on a request is an appliance
		// too slow to answer: the next request goes elsewhere, this one
		// ends.
		c.failover(i, err)
		if ctx.Err() != nil {
			return err
		}
	}
	return err
}

// doAt is do at one appliance, with the body encoded (nil: none).
func (c *client) doAt(ctx context.Context, server *url.URL, method, path string, in []byte, out any) error {
	var body io.Reader
	if in != nil {
		body = bytes.NewReader(in)
	}
	req, err := http.NewRequestWithContext(ctx, method, server.JoinPath(path).String(), body)
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
