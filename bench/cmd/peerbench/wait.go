package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rackboot/rackboot/bench/internal/result"
)

// admin talks to the appliance's admin API.
type admin struct {
	base   string
	token  string
	client *http.Client
}

func (a *admin) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// host is what wait reads of GET /api/hosts.
type host struct {
	MAC       string `json:"mac"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
}

// ended says whether the machine's one attempt is over: installed, or
// failed (the host is pending again with the error, or failed for good).
func (h host) ended() bool {
	return h.State == "installed" || h.State == "failed" || (h.State != "installing" && h.LastError != "")
}

func wait(ctx context.Context, fs *flag.FlagSet, args []string, tags result.Tags) error {
	server := fs.String("server", "", "the admin API's `URL` (https://IP:8443)")
	caFile := fs.String("ca", "", "PEM `file` of the appliance's CA (DATA/tls/ca.pem)")
	tokenFile := fs.String("token-file", "", "the admin token's `file` (DATA/admin.token)")
	macsFile := fs.String("macs", "", "`file` of the machines' MACs, one a line")
	pidsFile := fs.String("pids-file", "", "`file` of the agents' process ids: stop waiting once none is running")
	start := fs.Float64("start", 0, "when the agents were started, Unix `seconds`: the wall time's origin")
	timeout := fs.Duration("timeout", 30*time.Minute, "stop waiting after this")
	poll := fs.Duration("poll", time.Second, "time between two looks at the hosts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" || *caFile == "" || *tokenFile == "" || *macsFile == "" || *start == 0 {
		return fmt.Errorf("wait: want -server, -ca, -token-file, -macs and -start")
	}
	a, err := newAdmin(*server, *caFile, *tokenFile)
	if err != nil {
		return err
	}
	macs, err := readWords(*macsFile)
	if err != nil {
		return err
	}
	var pids []int
	if *pidsFile != "" {
		ws, err := readWords(*pidsFile)
		if err != nil {
			return err
		}
		for _, w := range ws {
			p, err := strconv.Atoi(w)
			if err != nil {
				return fmt.Errorf("%s: %q is no process id", *pidsFile, w)
			}
			pids = append(pids, p)
		}
	}
	t0 := time.Unix(0, int64(*start*1e9))
	deadline := time.Now().Add(*timeout)
	want := map[string]bool{}
	for _, m := range macs {
		want[strings.ToLower(m)] = true
	}
	why := ""
	for why == "" {
		var hosts []host
		if err := a.get(ctx, "/api/hosts?limit=5000", &hosts); err != nil {
			fmt.Fprintf(os.Stderr, "peerbench wait: %v\n", err)
		} else {
			ended := 0
			for _, h := range hosts {
				if want[h.MAC] && h.ended() {
					ended++
				}
			}
			if ended == len(want) {
				why = "every attempt ended"
				break
			}
		}
		switch {
		case len(pids) > 0 && !anyRunning(pids):
			why = "every agent exited"
		case time.Now().After(deadline):
			why = "timeout"
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			time.Sleep(*poll)
		}
	}
	ended := time.Now()
	s, err := summarize(ctx, a, macs, t0)
	if err != nil {
		return err
	}
	s.metrics["waited_s"] = ended.Sub(t0).Seconds()
	// Its own CPU: run.sh counts the agents' as its shell's reaped
	// children's, which include this process.
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.metrics["wait_cpu_s"] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	fmt.Fprintf(os.Stderr, "peerbench wait: %s: %s after %.1f s; %d of %d installed, the last %.1f s after the start; fetched %.1f MB (%.1f MB from peers)\n",
		tags, why, ended.Sub(t0).Seconds(), int(s.metrics["installed"]), len(macs), s.metrics["wall_s"],
		s.metrics["fetched_bytes"]/1e6, s.metrics["peer_bytes"]/1e6)
	for i, e := range s.errs {
		if i == 5 {
			fmt.Fprintf(os.Stderr, "  ... and %d more\n", len(s.errs)-5)
			break
		}
		fmt.Fprintf(os.Stderr, "  %s\n", e)
	}
	return result.Write(os.Stdout, result.Record{Tags: tags, Metrics: s.metrics})
}

func newAdmin(server, caFile, tokenFile string) (*admin, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, err
	}
	return &admin{
		base:  strings.TrimRight(server, "/"),
		token: strings.TrimSpace(string(tok)),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}},
	}, nil
}

// summary is what the histories say of the wave.
type summary struct {
	metrics map[string]float64
	errs    []string // the failed machines' errors
}

// summarize reads each machine's history: its latest attempt is the
// wave's. The peers' byte counts are read by name (any number field of
// the attempt whose name holds "peer"), so the record follows whatever
// the appliance calls them.
func summarize(ctx context.Context, a *admin, macs []string, t0 time.Time) (summary, error) {
	s := summary{metrics: map[string]float64{"agents": float64(len(macs))}}
	var durs []float64
	var last time.Time
	installed := 0
	for _, m := range macs {
		var hist []map[string]any
		if err := a.get(ctx, "/api/hosts/"+m+"/history", &hist); err != nil {
			return s, err
		}
		if len(hist) == 0 {
			s.errs = append(s.errs, m+": no attempt")
			continue
		}
		at := hist[len(hist)-1]
		if at["result"] != "success" {
			s.errs = append(s.errs, fmt.Sprintf("%s: %v %v", m, at["result"], at["error"]))
			continue
		}
		installed++
		if f, err := time.Parse(time.RFC3339Nano, fmt.Sprint(at["finished"])); err == nil && f.After(last) {
			last = f
		}
		if d, ok := at["duration_ms"].(float64); ok {
			durs = append(durs, d/1000)
		}
		for k, v := range at {
			n, ok := v.(float64)
			switch {
			case !ok:
			case k == "bytes_fetched":
				s.metrics["fetched_bytes"] += n
			case strings.Contains(k, "peer") && strings.HasPrefix(k, "bytes"):
				s.metrics["peer_bytes"] += n
			}
		}
	}
	s.metrics["installed"] = float64(installed)
	s.metrics["failed"] = float64(len(macs) - installed)
	if !last.IsZero() {
		s.metrics["wall_s"] = last.Sub(t0).Seconds()
	}
	if len(durs) > 0 {
		slices.Sort(durs)
		s.metrics["install_p50_s"] = result.Median(durs)
		s.metrics["install_max_s"] = durs[len(durs)-1]
		s.metrics["install_min_s"] = durs[0]
	}
	return s, nil
}

// anyRunning says whether any of pids is a live process (a zombie, exited
// but not yet reaped by the shell, is not).
func anyRunning(pids []int) bool {
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ...: the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] != 'Z' {
			return true
		}
	}
	return false
}

func readWords(name string) ([]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}
