package main

// `rackboot manpage` and `rackboot completion bash|zsh` are generated from
// what the verbs themselves define: the summaries of the usage text in
// main.go and each verb's flag set, read by running the verb in describe
// mode (flags.go). A flag added to a verb is in the man page and the
// completions of the next build with no other edit. packaging/build.sh
// runs exactly `rackboot manpage > rackboot.1` and `rackboot completion
// bash|zsh`.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// verb is a command of the usage text, described.
type verb struct {
	words   []string // "image", "add"
	summary string
	fs      *flag.FlagSet
	usage   string // the verb's usage text, as -h prints it
	fleet   bool   // an admin command, a client of the daemon
}

func (v verb) name() string { return strings.Join(v.words, " ") }

// synopsis is the usage lines of the verb's usage text, without "usage: ".
func (v verb) synopsis() []string {
	var out []string
	for l := range strings.Lines(v.usage) {
		l = strings.TrimRight(l, "\n")
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "-") {
			break
		}
		if s, ok := strings.CutPrefix(l, "usage: "); ok {
			out = append(out, s)
		} else if len(out) > 0 && strings.HasPrefix(l, " ") {
			out[len(out)-1] += " " + strings.TrimSpace(l)
		}
	}
	return out
}

// flags is the verb's flags in name order.
func (v verb) flags() []*flag.Flag {
	var fl []*flag.Flag
	if v.fs != nil {
		v.fs.VisitAll(func(f *flag.Flag) { fl = append(fl, f) })
	}
	return fl
}

var usageLine = regexp.MustCompile(`^  (\S+(?: \S+)?)\s{2,}(\S.*)$`)

// verbs lists the verbs of the usage text in its order, each with its
// flag set. The hidden verbs (manpage, completion) are not in it.
func verbs() []verb {
	var out []verb
	fleet := false
	for l := range strings.Lines(usage) {
		l = strings.TrimRight(l, "\n")
		if strings.HasPrefix(l, "fleet ") {
			fleet = true
		}
		m := usageLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		words := strings.Fields(m[1])
		run, ok := commands[words[0]]
		if !ok {
			continue
		}
		v := verb{words: words, summary: m[2], fleet: fleet}
		if d := describe(run, words[1:]); d != nil {
			v.fs, v.usage = d.fs, d.usage
		}
		out = append(out, v)
	}
	return out
}

// runManpage prints the man page, roff, section 1.
func runManpage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("manpage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "usage: rackboot manpage > rackboot.1") }
	pos, exit, ok := parseArgs(ctx, fs, args, stdout)
	if !ok {
		return exit
	}
	if len(pos) != 0 {
		fs.Usage()
		return 2
	}
	if _, err := io.WriteString(stdout, manpage(verbs(), readVersionInfo())); err != nil {
		fmt.Fprintf(stderr, "rackboot manpage: %v\n", err)
		return 1
	}
	return 0
}

// roff escapes text for a roff line: backslashes, and a leading dot or
// quote that would make the line a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.ContainsFunc(s, func(r rune) bool { return r > 0x7e }) {
		var b strings.Builder
		for _, r := range s {
			if r > 0x7e {
				fmt.Fprintf(&b, `\[u%04X]`, r) // groff's escape of a Unicode character
			} else {
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func manpage(vs []verb, b versionInfo) string {
	var w strings.Builder
	date := ""
	if t, err := time.Parse(time.RFC3339, b.Time); err == nil {
		date = t.Format("2006-01-02")
	}
	fmt.Fprintf(&w, ".TH RACKBOOT 1 %q %q \"rackboot manual\"\n", date, "rackboot "+b.Version)
	w.WriteString(".SH NAME\nrackboot \\- PXE/iPXE bare\\-metal provisioning appliance and its admin tools\n")
	w.WriteString(".SH SYNOPSIS\n.B rackboot\n.I command\n.RI [ flags ]\n.br\n.B rackboot\n.I command\n.B \\-h\n")
	w.WriteString(".SH DESCRIPTION\n" +
		"One binary: the daemon,\n.BR \"rackboot serve\" ,\nand the admin's commands. " +
		"The fleet commands talk to a running daemon over HTTPS: its URL is\n.B \\-\\-server\n" +
		"or\n.BR RACKBOOT_SERVER ;\nthe admin token is read from\n.I DATA/admin.token\n" +
		".RB ( \\-\\-data )\nor\n.BR RACKBOOT_TOKEN ;\nthe daemon's CA from\n.B \\-\\-ca\nor\n.BR RACKBOOT_CA .\n" +
		"Flags take one or two dashes, and may follow the arguments. " +
		"The commands that print data take\n.BR \\-\\-json :\nJSON that says what their text says. " +
		"Every command exits 0 on success and after\n.BR \\-h ,\n1 on failure, 2 on a usage error.\n")
	w.WriteString(".SH COMMANDS\n")
	fleet := false
	for _, v := range vs {
		if v.fleet && !fleet {
			fleet = true
			w.WriteString(".SH FLEET COMMANDS\n")
		}
		fmt.Fprintf(&w, ".SS %s\n", roff(v.name()))
		for _, s := range v.synopsis() {
			fmt.Fprintf(&w, ".nf\n%s\n.fi\n", roff(s))
		}
		fmt.Fprintf(&w, ".PP\n%s\n", roff(v.summary))
		for _, f := range v.flags() {
			arg, text := flag.UnquoteUsage(f)
			head := `\fB` + roff(dashed(f.Name)) + `\fR`
			if arg != "" {
				head += ` \fI` + roff(arg) + `\fR`
			}
			fmt.Fprintf(&w, ".TP\n%s\n", head)
			for i, l := range strings.Split(text, "\n") {
				if i > 0 {
					w.WriteString(".br\n")
				}
				fmt.Fprintf(&w, "%s\n", roff(l))
			}
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" && !strings.Contains(text, "default") {
				fmt.Fprintf(&w, "(default %s)\n", roff(f.DefValue))
			}
		}
	}
	w.WriteString(".SH ENVIRONMENT\n" +
		".TP\n.B RACKBOOT_SERVER\nthe daemon's URL for the fleet commands (default " + roff(defaultServer) + ")\n" +
		".TP\n.B RACKBOOT_TOKEN\nthe admin token, instead of DATA/admin.token\n" +
		".TP\n.B RACKBOOT_CA\nthe PEM file of the appliance's CA (default DATA/tls/ca.pem)\n")
	w.WriteString(".SH FILES\n" +
		".TP\n.I " + roff(defaultDataDir) + "\nthe daemon's state: the registry, admin.token, tls/\n" +
		".TP\n.I /etc/rackboot/profiles\nthe host profiles (YAML); check them with\n.BR \"rackboot validate\" .\n" +
		".TP\n.I " + roff(schemaPath) + "\nthe JSON Schema of the profiles, for editors (\n.BR \"rackboot schema\" )\n")
	return w.String()
}

// generators are the hidden verbs, not in the usage text: they print
// files of the package. They are not in commands, which they read.
var generators = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"manpage":    runManpage,
	"completion": runCompletion,
}

// dashed is how the man page and the completions spell a flag: -f for a
// one-letter name, --name otherwise (the flag package takes either).
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
