package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/api"
)

// runLogs prints the agent's log of a machine's running or latest attempt;
// with -f it follows the log until the attempt ends, and a pending
// machine's next attempt is waited for.
func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newCLI(stdout, stderr).logs(ctx, args)
}

func (c *cli) logs(ctx context.Context, args []string) int {
	fs, cf := c.flagSet("logs", "rackboot logs MAC|HOSTNAME [-f] [--attempt ID] [--json]")
	var follow bool
	fs.BoolVar(&follow, "f", false, "follow the log until the attempt ends")
	fs.BoolVar(&follow, "follow", false, "same as -f")
	asJSON := fs.Bool("json", false, "print each line of the log as a JSON object {\"mac\", \"line\"}, one a line")
	attempt := fs.Int("attempt", 0, "the attempt `ID` (see rackboot history; default: the running or latest)")
	pos, exit, ok := parseArgs(ctx, fs, args, c.stdout)
	if !ok {
		return exit
	}
	if len(pos) != 1 || *attempt < 0 {
		fs.Usage()
		return 2
	}
	cl, err := c.client(cf)
	if err != nil {
		return c.fail("logs", err)
	}
	mac, err := cl.resolve(ctx, pos[0])
	if err != nil {
		return c.fail("logs", err)
	}
	q := url.Values{}
	if *attempt > 0 {
		q.Set("attempt", strconv.Itoa(*attempt))
	}
	hc := cl.http
	if follow {
		q.Set("follow", "1")
		hc = cl.stream
	}
	path := "/api/hosts/" + mac + "/log"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := cl.do(ctx, hc, "GET", path, nil)
	if err != nil {
		return c.fail("logs", err)
	}
	defer resp.Body.Close()
	var n int64
	if *asJSON {
		n, err = copyJSONLines(c.stdout, resp.Body, mac)
	} else {
		n, err = io.Copy(c.stdout, resp.Body)
	}
	if err != nil {
		if ctx.Err() != nil {
			return c.fail("logs", ctx.Err())
		}
		return c.fail("logs", fmt.Errorf("the log stream broke: %w", err))
	}
	if !follow {
		if n == 0 {
			fmt.Fprintln(c.stderr, "(the log is empty)")
		}
		return 0
	}
	// The daemon ends a followed log when the attempt ends: say how.
	var h api.HostView
	if _, err := cl.get(ctx, "/api/hosts/"+mac, &h); err != nil {
		return c.fail("logs", err)
	}
	fmt.Fprintf(c.stderr, "-- the attempt ended: %s is %s", mac, h.State)
	if h.LastError != "" {
		fmt.Fprintf(c.stderr, " (%s)", oneLine(h.LastError))
	}
	fmt.Fprintln(c.stderr)
	return 0
}

// logLine is one line of `rackboot logs --json`.
type logLine struct {
	MAC  string `json:"mac"`
	Line string `json:"line"`
}

// copyJSONLines copies the text log r to w as JSON lines, each line as it
// arrives (logs -f streams), and returns the bytes read.
func copyJSONLines(w io.Writer, r io.Reader, mac string) (int64, error) {
	br := bufio.NewReader(r)
	var n int64
	for {
		l, err := br.ReadString('\n')
		n += int64(len(l))
		if l != "" {
			b, merr := json.Marshal(logLine{MAC: mac, Line: strings.TrimSuffix(l, "\n")})
			if merr != nil {
				return n, merr
			}
			if _, werr := w.Write(append(b, '\n')); werr != nil {
				return n, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
