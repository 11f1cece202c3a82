package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The operator assets (metrics/README.md): a Grafana dashboard and
// Prometheus alert rules. promtool checks the rules' syntax and behaviour
// (e2e/test.sh); these tests check that every metric and label they name
// exists in rackboot, so that a renamed metric breaks the build rather than
// a dashboard panel or, silently, an alert.

// known is every metric family rackboot serves, with its label names, as
// the registry gathers it once each hook has been called.
func known(t *testing.T) map[string][]string {
	t.Helper()
	m := New(Options{Census: func(context.Context) (Census, error) {
		return Census{States: map[string]int{"installing": 1}, Versions: []VersionCount{{Name: "v", Number: 1, Hosts: 1}}}, nil
	}})
	m.HTTPConnections(func() int { return 1 }, func() uint64 { return 1 }, func() uint64 { return 1 })
	m.DHCPReply("offer", "bios")
	m.TFTPTransfer("ok", 1)
	m.HTTPRequest("artifacts", 200, 1)
	m.IPXEScript(nil, "local")
	m.InstallStarted()
	m.InstallEnded("success", time.Minute, 1)
	m.InstallFetched(2, 1)
	m.ProfilesFailed()
	m.ProfilesLoaded()
	m.DiscoveredForgotten("cap", 1)
	m.PowerAction("52:54:00:00:00:01", "n1", "cycle", "timeout", false, "unknown")
	m.Rollout("r1", "halted", map[string]int{"failed": 2})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	k := map[string][]string{
		// Series Prometheus itself records of each scrape.
		"up": nil,
	}
	for _, f := range fams {
		labels := map[string]bool{}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		names := make([]string, 0, len(labels))
		for l := range labels {
			names = append(names, l)
		}
		slices.Sort(names)
		k[f.GetName()] = names
		if f.GetType().String() == "HISTOGRAM" {
			k[f.GetName()+"_bucket"] = append(slices.Clone(names), "le")
			k[f.GetName()+"_sum"] = names
			k[f.GetName()+"_count"] = names
		}
	}
	return k
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// query is one PromQL expression of an asset, named for messages.
type query struct {
	where, expr string
}

func dashboardQueries(t *testing.T) (qs []query, templating []query) {
	t.Helper()
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		SchemaVersion int     `json:"schemaVersion"`
		UID           string  `json:"uid"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.SchemaVersion == 0 || d.UID == "" || len(d.Panels) == 0 {
		t.Errorf("dashboard.json: schemaVersion %d, uid %q, %d panels", d.SchemaVersion, d.UID, len(d.Panels))
	}
	ids := map[int]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup || p.ID == 0 {
				t.Errorf("dashboard.json: panel %q has id %d, as %q", p.Title, p.ID, prev)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("dashboard.json: panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("dashboard.json panel %q (%s)", p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		switch x := v.Query.(type) {
		case string:
			q = x
		case map[string]any:
			q, _ = x["query"].(string)
		}
		templating = append(templating, query{fmt.Sprintf("dashboard.json variable %s", v.Name), q})
	}
	return qs, templating
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func alertQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var qs []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{"alerts.yml " + r.Alert + r.Record, r.Expr})
		}
	}
	if len(qs) == 0 {
		t.Fatal("alerts.yml: no rules")
	}
	return qs
}

func TestAssetsUseKnownMetrics(t *testing.T) {
	k := known(t)
	dash, vars := dashboardQueries(t)
	var qs []query
	qs = append(qs, dash...)
	qs = append(qs, alertQueries(t)...)
	for _, v := range vars {
		// label_values(METRIC, LABEL) is Grafana's, not PromQL.
		m := regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`).FindStringSubmatch(v.expr)
		if m == nil {
			t.Errorf("%s: %q is not label_values(METRIC, LABEL)", v.where, v.expr)
			continue
		}
		qs = append(qs, query{v.where, m[1] + `{` + m[2] + `!=""}`})
	}
	missing := map[string]bool{}
	for _, q := range qs {
		refs, err := parseRefs(q.expr)
		if err != nil {
			t.Errorf("%s: %v in %q", q.where, err, q.expr)
			continue
		}
		if len(refs.metrics) == 0 {
			t.Errorf("%s: no metric in %q", q.where, q.expr)
		}
		var all []string // the labels of every metric of the expression
		complete := true
		for _, r := range refs.metrics {
			labels, ok := k[r.name]
			if !ok {
				t.Errorf("%s: no metric %s in rackboot's registry", q.where, r.name)
				missing[r.name] = true
				complete = false
				continue
			}
			all = append(all, labels...)
			for _, l := range r.labels {
				if l != "__name__" && !slices.Contains(labels, l) && !slices.Contains(targetLabels, l) {
					t.Errorf("%s: metric %s has no label %s (it has %s)", q.where, r.name, l, strings.Join(labels, ", "))
				}
			}
		}
		for _, l := range refs.grouping {
			if complete && !slices.Contains(all, l) && !slices.Contains(targetLabels, l) {
				t.Errorf("%s: groups by %s, which none of its metrics has", q.where, l)
			}
		}
	}
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for n := range missing {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Logf("metrics the assets name that rackboot lacks: %s", strings.Join(names, " "))
	}
}

// TestDashboardQueriesParse has promtool parse every query of the
// dashboard, as recording rules, with Grafana's interval variables
// replaced.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("no promtool (Debian's prometheus package; e2e/test.sh installs it)")
	}
	dash, _ := dashboardQueries(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h", "$instance", ".*")
	for i, q := range dash {
		rules = append(rules, rule{fmt.Sprintf("dashboard:query_%d", i), vars.Replace(q.expr)})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// refs is what an expression names: metrics with the labels matched on
// each, and the labels it groups or matches by (by, without, on, ignoring,
// group_left, group_right).
type refs struct {
	metrics  []metricRef
	grouping []string
}

type metricRef struct {
	name   string
	labels []string
}

// keywords are PromQL's words that are not metric names.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true,
	// aggregations, which may be followed by by (…) before their (
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// parseRefs finds the metric names and label names of a PromQL
// expression. It is a tokenizer, not a parser (promtool checks the
// syntax): an identifier followed by ( is a function or aggregation, a
// keyword is skipped, any other identifier outside [] and {} is a
// metric name, and a {…} after one holds its matchers.
func parseRefs(expr string) (refs, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return refs{}, err
	}
	var r refs
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		next := func(j int) token {
			if j < len(toks) {
				return toks[j]
			}
			return token{}
		}
		switch {
		case tk.kind == tIdent && grouping[strings.ToLower(tk.text)] && next(i+1).text == "(":
			j := i + 2
			for ; j < len(toks) && toks[j].text != ")"; j++ {
				if toks[j].kind == tIdent {
					r.grouping = append(r.grouping, toks[j].text)
				} else if toks[j].text != "," {
					return r, fmt.Errorf("unexpected %q in %s (…)", toks[j].text, tk.text)
				}
			}
			i = j
		case tk.kind == tIdent && next(i+1).text == "(":
			// a function or an aggregation
		case tk.kind == tIdent && keywords[strings.ToLower(tk.text)]:
		case tk.kind == tIdent:
			m := metricRef{name: tk.text}
			if next(i+1).text == "{" {
				j := i + 2
				for ; j < len(toks) && toks[j].text != "}"; j++ {
					switch {
					case toks[j].kind == tIdent && next(j+1).kind == tOp && next(j+2).kind == tString:
						m.labels = append(m.labels, toks[j].text)
						j += 2
					case toks[j].text == ",":
					default:
						return r, fmt.Errorf("unexpected %q in the matchers of %s", toks[j].text, m.name)
					}
				}
				if j == len(toks) {
					return r, fmt.Errorf("unclosed { after %s", m.name)
				}
				i = j
			}
			r.metrics = append(r.metrics, m)
		case tk.text == "{":
			return r, fmt.Errorf("a selector without a metric name")
		}
	}
	return r, nil
}

type tokenKind int

const (
	tIdent tokenKind = iota + 1
	tString
	tNumber
	tOp
	tPunct
)

type token struct {
	kind tokenKind
	text string
}

// tokenize splits a PromQL expression; the contents of [] (a range or
// subquery's durations, Grafana's $__rate_interval) are skipped.
func tokenize(s string) ([]token, error) {
	var toks []token
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // a comment to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			toks = append(toks, token{tString, s[i+1 : j]})
			i = j + 1
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i += j + 1
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' || isIdent(s[j], false)) {
				j++
			}
			toks = append(toks, token{tNumber, s[i:j]})
			i = j
		case isIdent(c, true):
			j := i
			for j < len(s) && isIdent(s[j], false) {
				j++
			}
			toks = append(toks, token{tIdent, s[i:j]})
			i = j
		case strings.ContainsRune("(){},", rune(c)):
			toks = append(toks, token{tPunct, string(c)})
			i++
		case strings.ContainsRune("=!~<>+-*/%^@", rune(c)):
			j := i + 1
			for j < len(s) && strings.ContainsRune("=~", rune(s[j])) {
				j++
			}
			toks = append(toks, token{tOp, s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return toks, nil
}

func TestParseRefs(t *testing.T) {
	tests := []struct {
		expr     string
		metrics  []metricRef
		grouping []string
	}{
		{`up{job="rackboot"} == 0`, []metricRef{{"up", []string{"job"}}}, nil},
		{`histogram_quantile(0.9, sum by (le) (rate(a_bucket{result="success", instance=~"$instance"}[$__rate_interval])))`,
			[]metricRef{{"a_bucket", []string{"result", "instance"}}}, []string{"le"}},
		{`sum(rate(a[5m])) by (x) / on (job, instance) group_left b unless count without (y) (c) > 0.25`,
			[]metricRef{{"a", nil}, {"b", nil}, {"c", nil}}, []string{"x", "job", "instance", "y"}},
		{"a{x=\"}\", y!~'a,b'} and bool\n  1e3 # a comment naming d\n", []metricRef{{"a", []string{"x", "y"}}}, nil},
	}
	for _, tt := range tests {
		r, err := parseRefs(tt.expr)
		if err != nil {
			t.Errorf("%q: %v", tt.expr, err)
			continue
		}
		if fmt.Sprint(r.metrics) != fmt.Sprint(tt.metrics) || fmt.Sprint(r.grouping) != fmt.Sprint(tt.grouping) {
			t.Errorf("%q: got %v by %v, want %v by %v", tt.expr, r.metrics, r.grouping, tt.metrics, tt.grouping)
		}
	}
	for _, bad := range []string{`{job="x"}`, `a{b}`, `a{b="c"`, `a[5m`, `"x`} {
		if _, err := parseRefs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
