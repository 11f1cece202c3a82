package main

import (
	"cmp"
	"github.com/rackboot/rackboot/agentapi"
	"net"
	"os"

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/rackboot/rackboot/profiles"
)

// renderArchs are the client architectures `rackboot render --arch`
// accepts, named as admins know them rather than by option 93 numbers.
var renderArchs = []string{"bios", "efi", "efi-http", "arm64"}

// renderer shows what rackboot would do for one machine, without a
// machine: the resolved profile with where each value came from, the DHCP
// answer, the iPXE script and the install plan.
//
// The DHCP answer and the iPXE script come from the dhcp and ipxe packages,
// which cmd/rackboot wires in; a nil function leaves its section out with a
// note, so the profile and the plan are still shown. The plan comes from
// the daemon's own planner: it is what the agent API serves the machine.
type renderer struct {
	// DHCP returns the proxyDHCP answer, as text, to a DHCPDISCOVER from
	// the host's firmware (ipxe false) or from iPXE (ipxe true) on arch.
	DHCP func(set *profiles.Set, h *profiles.Host, arch string, ipxe bool) (string, error)
	// Script returns the per-machine iPXE script the host would be served.
	Script func(set *profiles.Set, h *profiles.Host, arch string) (string, error)
	// Plan is the appliance's planner (run sets it from --artifacts);
	// installed is the version the machine runs (--installed), or nil;
	// base is the appliance's URL.
	Plan func(h *profiles.Host, installed *profiles.Version, base string) (agentapi.Plan, error)
}

// runRender implements `rackboot render`.
func runRender(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := defaultServeConfig()
	r := renderer{DHCP: renderDHCP(cfg), Script: renderScript(cfg)}
	return r.run(ctx, args, stdout, stderr)
}

// defaultRenderURL is the appliance URL render puts in plans, the address
// its DHCP answers and scripts show, unless --url names the real one.
func defaultRenderURL(cfg serveConfig) string {
	return "http://" + net.JoinHostPort(renderAddress.String(), strconv.Itoa(cfg.HTTPPort))
}

func (r renderer) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("profiles", "", "the profiles `directory`")
	mac := fs.String("mac", "", "the machine's MAC `address`, in any common spelling")
	arch := fs.String("arch", "efi", "the client architecture: "+strings.Join(renderArchs, ", "))
	fromIPXE := fs.Bool("ipxe", false, "show the DHCP answer to iPXE rather than to the firmware")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	planOnly := fs.Bool("plan", false, "print only the install plan, as the agent API serves it (JSON)")
	cfg := defaultServeConfig()
	base := fs.String("url", defaultRenderURL(cfg), "the appliance's `URL` as agents reach it, for the plan's image URL")
	artifactsDir := fs.String("artifacts", cfg.Artifacts, "the artifacts `directory`, where the plan's image sizes are read")
	installedName := fs.String("installed", "", "the `version` the machine runs, as the registry would say: a chunked image reuses what it shares with it (the plan's seed)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rackboot render --profiles DIR --mac MAC [--arch bios|efi|efi-http|arm64] [--ipxe] [--json|--plan] [--url URL] [--artifacts DIR] [--installed VERSION]")
		fs.PrintDefaults()
	}
	pos, exit, ok := parseArgs(ctx, fs, args, stdout)
	if !ok {
		return exit
	}
	if *dir == "" || *mac == "" || len(pos) != 0 {
		fs.Usage()
		return 2
	}
	if !slices.Contains(renderArchs, *arch) {
		fmt.Fprintf(stderr, "rackboot render: --arch %s: want one of %s\n", *arch, strings.Join(renderArchs, ", "))
		return 2
	}
	hw, err := profiles.ParseMAC(*mac)
	if err != nil {
		fmt.Fprintf(stderr, "rackboot render: --mac: %v\n", err)
		return 2
	}
	set, err := profiles.Load(*dir)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	h, ok := set.Lookup(hw)
	if !ok {
		fmt.Fprintf(stderr, "rackboot render: %s is not a host of %s: rackboot answers it only when discovery is on\n", hw, *dir)
		return 1
	}
	var installed *profiles.Version
	if *installedName != "" {
		if installed, ok = set.Version(*installedName); !ok {
			fmt.Fprintf(stderr, "rackboot render: --installed %s: not a version of the catalog\n", *installedName)
			return 1
		}
	}
	r.Plan = renderPlan(*artifactsDir)
	if *planOnly {
		p, err := r.Plan(h, installed, strings.TrimSuffix(*base, "/"))
		if err != nil {
			fmt.Fprintf(stderr, "rackboot render: install plan: %v\n", err)
			return 1
		}
		if err := writePlanJSON(stdout, p); err != nil {
			fmt.Fprintf(stderr, "rackboot render: %v\n", err)
			return 1
		}
		return 0
	}
	rep := r.report(set, h, installed, *arch, *fromIPXE, strings.TrimSuffix(*base, "/"))
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "rackboot render: %v\n", err)
			return 1
		}
		return 0
	}
	if err := rep.writeText(stdout); err != nil {
		fmt.Fprintf(stderr, "rackboot render: %v\n", err)
		return 1
	}
	return 0
}

// renderReport is everything `rackboot render` shows; its JSON form is the
// output of --json.
type renderReport struct {
	MAC       string              `json:"mac"`
	Hostname  string              `json:"hostname"`
	Source    string              `json:"source"`
	Groups    []string            `json:"groups"`
	Arch      string              `json:"arch"`
	IPXE      bool                `json:"ipxe"`
	Profile   []profiles.Setting  `json:"profile"`
	Installer *profiles.Installer `json:"installer"`
	DHCP      string              `json:"dhcp,omitempty"`
	Script    string              `json:"ipxe_script,omitempty"`
	Version   *agentapi.Version   `json:"version,omitempty"`
	Plan      *agentapi.Plan      `json:"plan,omitempty"`
	// Notes say why a section is missing.
	Notes []string `json:"notes,omitempty"`
}

func (r renderer) report(set *profiles.Set, h *profiles.Host, installed *profiles.Version, arch string, fromIPXE bool, base string) *renderReport {
	rep := &renderReport{
		MAC: profiles.MACKey(h.MAC), Hostname: h.Hostname, Source: h.Source, Groups: h.Groups,
		Arch: arch, IPXE: fromIPXE, Profile: h.Settings(), Installer: h.Installer,
	}
	if rep.Groups == nil {
		rep.Groups = []string{}
	}
	if r.DHCP == nil {
		rep.Notes = append(rep.Notes, "dhcp: not available in this build")
	} else if s, err := r.DHCP(set, h, arch, fromIPXE); err != nil {
		rep.Notes = append(rep.Notes, "dhcp: "+err.Error())
	} else {
		rep.DHCP = s
	}
	if r.Script == nil {
		rep.Notes = append(rep.Notes, "ipxe script: not available in this build")
	} else if s, err := r.Script(set, h, arch); err != nil {
		rep.Notes = append(rep.Notes, "ipxe script: "+err.Error())
	} else {
		rep.Script = s
	}
	switch p, err := r.Plan(h, installed, base); {
	case errors.Is(err, profiles.ErrNoPlan):
		rep.Notes = append(rep.Notes, "install plan: none, "+strings.TrimPrefix(err.Error(), profiles.ErrNoPlan.Error()+": ")+" (it boots its installer only)")
	case err != nil:
		rep.Notes = append(rep.Notes, "install plan: "+err.Error())
	default:
		rep.Plan = &p
		rep.Version = &agentapi.Version{Name: h.Version.Name, Number: h.Version.Number}
		if p.Image != nil && p.Image.RawSize == 0 {
			rep.Notes = append(rep.Notes, "install plan: image sizes unknown (the image is not under --artifacts, or is on another server): the agent shows no percentage")
		}
	}
	return rep
}

// writeText prints the report for people: sections, aligned columns, and
// the files of the config drive verbatim.
func (rep *renderReport) writeText(w io.Writer) error {
	var b strings.Builder
	name := rep.Hostname
	if name == "" {
		name = "(no hostname)"
	}
	fmt.Fprintf(&b, "host %s %s (%s)\n", rep.MAC, name, rep.Source)
	if len(rep.Groups) > 0 {
		fmt.Fprintf(&b, "groups: %s (most specific first)\n", strings.Join(rep.Groups, ", "))
	}
	booter := "firmware PXE"
	if rep.IPXE {
		booter = "iPXE"
	}
	fmt.Fprintf(&b, "arch: %s, asking: %s\n", rep.Arch, booter)

	b.WriteString("\nprofile\n")
	rows := [][]string{{"SETTING", "VALUE", "FROM"}}
	for _, s := range rep.Profile {
		rows = append(rows, []string{s.Field, oneLine(s.Value), s.From})
	}
	table(&b, "  ", rows)

	b.WriteString("\ninstaller\n")
	if in := rep.Installer; in != nil {
		fmt.Fprintf(&b, "  kernel   %s\n  initrd   %s\n  cmdline  %s\n", in.Kernel, in.Initrd, in.Cmdline)
	} else {
		b.WriteString("  none: the host boots nothing\n")
	}
	if rep.DHCP != "" {
		fmt.Fprintf(&b, "\ndhcp answer\n%s", indent(rep.DHCP))
	}
	if rep.Script != "" {
		fmt.Fprintf(&b, "\nipxe script\n%s", indent(rep.Script))
	}
	if p := rep.Plan; p != nil {
		writePlan(&b, p, rep.Version)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\nnotes\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writePlan(b *strings.Builder, p *agentapi.Plan, v *agentapi.Version) {
	b.WriteString("\ninstall plan (as the agent API serves it; --plan prints its JSON)\n")
	d := p.Disk
	disk := d.Path
	if disk == "" {
		disk = "the " + cmp.Or(d.Select, agentapi.SelectSmallest) + " disk"
	}
	var rules []string
	if d.MinSize > 0 {
		rules = append(rules, "at least "+d.MinSize.String())
	}
	if d.Type != "" {
		rules = append(rules, "of type "+d.Type)
	}
	if len(rules) > 0 {
		disk += " " + strings.Join(rules, ", ")
	}
	fmt.Fprintf(b, "  disk     %s\n", disk)
	if v != nil {
		fmt.Fprintf(b, "  version  %s (number %d)\n", v.Name, v.Number)
	}
	img := p.Image
	fmt.Fprintf(b, "  image    %s (%s, %s)\n           sha256 %s\n", img.URL, img.Format, img.Kind, img.SHA256)
	switch {
	case img.Format == agentapi.FormatChunked && (img.Size > 0 || img.RawSize > 0):
		fmt.Fprintf(b, "           %s image, %s of chunks stored (what an empty disk fetches)\n", agentapi.HumanBytes(img.RawSize), agentapi.HumanBytes(img.Size))
	case img.Size > 0 || img.RawSize > 0:
		fmt.Fprintf(b, "           %s stored, %s decompressed\n", agentapi.HumanBytes(img.Size), agentapi.HumanBytes(img.RawSize))
	}
	if img.Chunks != "" {
		fmt.Fprintf(b, "           chunks %s\n", img.Chunks)
	}
	if s := img.Seed; s != nil {
		fmt.Fprintf(b, "           seed   %s (%s)\n", s.URL, s.Version)
	}
	b.WriteString("  partitions\n")
	rows := [][]string{{"#", "NAME", "SIZE", "TYPE", "CONTENT", "FILESYSTEM", "PRESERVE"}}
	if p.WholeDisk() {
		rows = append(rows, []string{"-", "(image)", "", "", "whole-disk image"})
	}
	for i, pp := range p.Partitions {
		keep := ""
		if pp.Preserve {
			keep = "yes"
		}
		rows = append(rows, []string{strconv.Itoa(i + 1), pp.Name, pp.Size.String(), pp.Type, cmp.Or(pp.EffectiveContent(), "empty"), pp.Filesystem, keep})
	}
	table(b, "    ", rows)
	if p.WholeDisk() {
		b.WriteString("  (the image brings its own partitions; the layout's go after them, at the end of the disk unless one takes\n   the rest, and the image's last partition grows up to them)\n")
	}
	if len(p.ConfigDrive) == 0 {
		b.WriteString("  config drive: none (the layout has no partition with content: config)\n")
		return
	}
	label := agentapi.ConfigDriveLabel
	for _, pp := range p.Partitions {
		if pp.EffectiveContent() == agentapi.ContentConfigDrive {
			label = pp.EffectiveLabel()
		}
	}
	fmt.Fprintf(b, "  config drive (%s)\n", label)
	for _, f := range p.ConfigDrive {
		fmt.Fprintf(b, "    --- %s\n%s", f.Name, indent(indent(indent(f.Content))))
	}
}

// writePlanJSON prints a plan the way the agent API encodes it.
func writePlanJSON(w io.Writer, p agentapi.Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// renderPlan is the daemon's planner, measuring images and reading chunk
// indexes in dir when it is a directory.
func renderPlan(dir string) func(*profiles.Host, *profiles.Version, string) (agentapi.Plan, error) {
	var pl profiles.Planner
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		pl = planner(dir, readIndex)
	}
	return func(h *profiles.Host, installed *profiles.Version, base string) (agentapi.Plan, error) {
		return pl.Plan(h, nil, installed, base)
	}
}

// table writes rows in aligned columns, each line prefixed, without
// trailing blanks.
func table(b *strings.Builder, prefix string, rows [][]string) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 8, 2, ' ', 0)
	for _, r := range rows {
		// Short rows are padded: tabwriter aligns a column only over
		// consecutive lines that all have it.
		r = append(r, make([]string, len(rows[0])-len(r))...)
		fmt.Fprintln(tw, prefix+strings.Join(r, "\t"))
	}
	tw.Flush()
	for l := range strings.Lines(buf.String()) {
		b.WriteString(strings.TrimRight(l, " \n") + "\n")
	}
}

// indent prefixes every line of s with two spaces and ends it with a newline.
func indent(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// oneLine keeps a table row on one line whatever a value holds.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(s)
}
