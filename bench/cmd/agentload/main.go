// Command agentload simulates installer agents against rackboot's agent API
// (P5). Each agent does what rackboot-agent does at boot: fetch its iPXE
// script (GET /ipxe?mac=...) over plain HTTP to get the install token and
// the agent API's URL the script puts on the kernel line (rackboot.token=,
// rackboot.server=, https with the appliance's CA), fetch its plan with it
// (GET /api/agent/plan), then post its progress (POST /api/agent/progress)
// every interval for the duration. Every agent has its own HTTP connection,
// as separate machines would. It writes one result record: reports
// expected, answered with 204, lost, and the latency percentiles of the
// progress posts.
//
//	agentload -write-fleet DIR/fleet.yaml -artifacts ART -agents 1000   # the profiles and image the server needs
//	agentload -base http://192.168.77.1:8080 -ca DATA/tls/ca.pem -agents 1000 -interval 1s -duration 60s -tag server=rackboot
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/bench/internal/result"
)

type config struct {
	base      string
	roots     *x509.CertPool // the appliance's CA for an https agent API; nil: the system's
	agents    []net.HardwareAddr
	interval  time.Duration
	duration  time.Duration
	setupConc int
	timeout   time.Duration
}

func main() {
	tags := result.Tags{}
	var (
		c          config
		n          = flag.Int("agents", 1000, "number of agents")
		prefix     = flag.String("mac-prefix", "52:54:02", "first three bytes of the agents' MACs")
		fleet      = flag.String("write-fleet", "", "write the profiles `file` listing the agents, and their image into -artifacts, then exit")
		artifacts  = flag.String("artifacts", ".", "the server's artifacts `folder`, where -write-fleet writes the image")
		requireAll = flag.Bool("require-all", false, "exit 1 unless every agent got its token and plan and every report was answered")
		ca         = flag.String("ca", "", "PEM `file` of the appliance's CA (DATA/tls/ca.pem), which the agent API's certificate is verified against")
	)
	flag.StringVar(&c.base, "base", "http://192.168.77.1:8080", "rackboot's `URL`")
	flag.DurationVar(&c.interval, "interval", time.Second, "time between one agent's reports")
	flag.DurationVar(&c.duration, "duration", time.Minute, "how long every agent reports")
	flag.IntVar(&c.setupConc, "setup-concurrency", 50, "agents fetching their script and plan at once")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Second, "a request without an answer after this is lost")
	flag.Var(tags, "tag", "`key=value` added to the result record (repeatable)")
	flag.Parse()

	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "agentload: %v\n", err)
		os.Exit(2)
	}
	var err error
	if c.agents, err = macs(*prefix, *n); err != nil {
		fail(err)
	}
	if *fleet != "" {
		sum, err := writeImage(*artifacts)
		if err != nil {
			fail(err)
		}
		f, err := os.Create(*fleet)
		if err != nil {
			fail(err)
		}
		if err := writeFleet(f, c.agents, sum); err != nil {
			fail(err)
		}
		if err := f.Close(); err != nil {
			fail(err)
		}
		return
	}
	if *ca != "" {
		b, err := os.ReadFile(*ca)
		if err != nil {
			fail(err)
		}
		c.roots = x509.NewCertPool()
		if !c.roots.AppendCertsFromPEM(b) {
			fail(fmt.Errorf("-ca %s: no PEM certificate", *ca))
		}
	}
	if c.interval <= 0 || c.duration < c.interval {
		fail(errors.New("-interval must be positive and -duration at least one interval"))
	}

	s := run(context.Background(), c)
	if err := result.Write(os.Stdout, result.Record{Tags: tags, Metrics: s.metrics()}); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "agentload: %s: %d of %d agents set up in %.1f s; %d of %d reports answered, %d lost; p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		tags, s.setupOK, len(c.agents), s.setup.Seconds(), s.ok, s.expected, s.lost(), result.Ms(s.p(50)), result.Ms(s.p(99)), result.Ms(s.p(100)))
	for i, e := range s.errs {
		if i == 5 {
			fmt.Fprintf(os.Stderr, "  ... and %d more\n", len(s.errs)-5)
			break
		}
		fmt.Fprintf(os.Stderr, "  %v\n", e)
	}
	if *requireAll && (s.setupOK != len(c.agents) || s.lost() > 0) {
		fmt.Fprintf(os.Stderr, "agentload: FAIL: %d agents without a token and plan, %d reports lost\n", len(c.agents)-s.setupOK, s.lost())
		os.Exit(1)
	}
}

// stats is a run's outcome.
type stats struct {
	setupOK       int
	setup         time.Duration
	expected, ok  int
	latencies     []time.Duration // answered reports, sorted
	maxLag        time.Duration   // how late the latest report left its schedule
	errs          []error         // first errors, for the reader
	reportsPerSec float64
}

func (s stats) lost() int { return s.expected - s.ok }

func (s stats) p(q float64) time.Duration { return result.Percentile(s.latencies, q) }

func (s stats) metrics() map[string]float64 {
	return map[string]float64{
		"setup_ok":      float64(s.setupOK),
		"setup_s":       s.setup.Seconds(),
		"reports":       float64(s.expected),
		"answered":      float64(s.ok),
		"lost":          float64(s.lost()),
		"reports_per_s": s.reportsPerSec,
		"p50_ms":        result.Ms(s.p(50)),
		"p90_ms":        result.Ms(s.p(90)),
		"p99_ms":        result.Ms(s.p(99)),
		"max_ms":        result.Ms(s.p(100)),
		"max_lag_ms":    result.Ms(s.maxLag),
	}
}

// agent is one simulated machine.
type agent struct {
	mac    net.HardwareAddr
	token  string
	api    string // rackboot.server= of its script
	client *http.Client
}

// errorLog keeps the first errors of many goroutines.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, err)
	}
}

func run(ctx context.Context, c config) stats {
	var s stats
	var elog errorLog
	agents := make([]*agent, len(c.agents))
	for i, m := range c.agents {
		// One transport per agent: its own TCP connection, kept alive.
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true, IdleConnTimeout: 5 * time.Minute,
			TLSClientConfig: &tls.Config{RootCAs: c.roots, MinVersion: tls.VersionTLS12}}
		agents[i] = &agent{mac: m, client: &http.Client{Transport: tr, Timeout: c.timeout}}
	}
	defer func() {
		for _, a := range agents {
			a.client.CloseIdleConnections()
		}
	}()

	// Setup: script, token, plan. Bounded concurrency: a rack does not
	// reach this point all in one millisecond either.
	start := time.Now()
	sem := make(chan struct{}, max(c.setupConc, 1))
	var wg sync.WaitGroup
	var setupOK atomic.Int64
	for _, a := range agents {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := a.setup(ctx, c.base); err != nil {
				elog.add(fmt.Errorf("setup of %s: %w", a.mac, err))
				return
			}
			setupOK.Add(1)
		})
	}
	wg.Wait()
	s.setupOK, s.setup = int(setupOK.Load()), time.Since(start)

	// Reports: agent i starts i/n of an interval after the others, so the
	// load is even, as it is when machines boot at different moments.
	perAgent := int(c.duration / c.interval)
	s.expected = perAgent * len(agents)
	lats := make([][]time.Duration, len(agents))
	lags := make([]time.Duration, len(agents))
	t0 := time.Now()
	for i, a := range agents {
		if a.token == "" {
			continue // its reports are all lost
		}
		wg.Go(func() {
			offset := time.Duration(int64(c.interval) * int64(i) / int64(len(agents)))
			for k := range perAgent {
				due := t0.Add(offset + time.Duration(k)*c.interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				} else {
					lags[i] = max(lags[i], -d)
				}
				sent := time.Now()
				if err := a.report(ctx, k, perAgent); err != nil {
					elog.add(fmt.Errorf("report %d of %s: %w", k, a.mac, err))
					continue
				}
				lats[i] = append(lats[i], time.Since(sent))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	for i := range agents {
		s.latencies = append(s.latencies, lats[i]...)
		s.maxLag = max(s.maxLag, lags[i])
	}
	slices.Sort(s.latencies)
	s.ok = len(s.latencies)
	s.reportsPerSec = float64(s.ok) / elapsed.Seconds()
	s.errs = elog.errs
	return s
}

var (
	tokenRe = regexp.MustCompile(`rackboot\.token=([A-Za-z0-9]+)`)
	// serverRe takes the first of rackboot.server='s comma-separated
	// appliances: the one that served the script.
	serverRe = regexp.MustCompile(`rackboot\.server=(https?://[^ ,]+)`)
)

// setup fetches the agent's script, takes the token and the agent API's
// URL from its kernel line, and fetches the plan, which starts the install
// attempt.
func (a *agent) setup(ctx context.Context, base string) error {
	mac := strings.ReplaceAll(a.mac.String(), ":", "-") // iPXE's ${mac:hexhyp}
	body, err := a.do(ctx, http.MethodGet, base+"/ipxe?mac="+mac+"&arch=x86_64&platform=pcbios", "", http.StatusOK)
	if err != nil {
		return fmt.Errorf("script: %w", err)
	}
	m := tokenRe.FindSubmatch(body)
	if m == nil {
		return fmt.Errorf("script has no rackboot.token=:\n%s", body)
	}
	srv := serverRe.FindSubmatch(body)
	if srv == nil {
		return fmt.Errorf("script has no rackboot.server=:\n%s", body)
	}
	a.token, a.api = string(m[1]), string(srv[1])
	if _, err := a.do(ctx, http.MethodGet, a.api+agentapi.PathPlan, "", http.StatusOK); err != nil {
		a.token = ""
		return fmt.Errorf("plan: %w", err)
	}
	return nil
}

// report posts progress report k of n: the image phase, 1 GiB to write.
func (a *agent) report(ctx context.Context, k, n int) error {
	const total = 1 << 30
	body := fmt.Sprintf(`{"phase":%q,"done":%d,"total":%d,"rate":%d}`, agentapi.PhaseImage, int64(total)*int64(k)/int64(n), total, 100<<20)
	_, err := a.do(ctx, http.MethodPost, a.api+agentapi.PathProgress, body, http.StatusNoContent)
	return err
}

// do sends one request and wants status want.
func (a *agent) do(ctx context.Context, method, url, body string, want int) ([]byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
		req.Header.Set(agentapi.MACHeader, a.mac.String())
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return b, fmt.Errorf("%s %s: %s: %.200s", method, url, resp.Status, b)
	}
	return b, nil
}
