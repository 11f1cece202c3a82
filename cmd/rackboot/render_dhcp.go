package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/rackboot/rackboot/dhcp"
	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/profiles"
)

// renderAddress is the appliance address render shows in answers: a
// documentation address (RFC 5737), since render runs away from the
// appliance and its interfaces.
var renderAddress = net.IPv4(192, 0, 2, 1)

// renderArchCodes maps render's --arch names to option 93 (RFC 4578) and
// the vendor class (option 60) the firmware sends with it.
var renderArchCodes = map[string]struct {
	arch  iana.Arch
	class string
}{
	"bios":     {iana.INTEL_X86PC, "PXEClient:Arch:00000:UNDI:002001"},
	"efi":      {iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"},
	"efi-http": {iana.EFI_X86_64_HTTP, "HTTPClient:Arch:00016:UNDI:003001"},
	"arm64":    {iana.EFI_ARM64, "PXEClient:Arch:00011:UNDI:003000"},
}

// renderDHCP builds the DHCPDISCOVER the host's firmware (or iPXE) would
// send and returns the proxy's answer to it, decided by the same pure
// function the daemon uses.
func renderDHCP(cfg serveConfig) func(*profiles.Set, *profiles.Host, string, bool) (string, error) {
	return func(_ *profiles.Set, h *profiles.Host, arch string, fromIPXE bool) (string, error) {
		a, ok := renderArchCodes[arch]
		if !ok {
			return "", fmt.Errorf("unknown arch %q", arch)
		}
		mods := []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier(a.class)),
			dhcpv4.WithOption(dhcpv4.OptClientArch(a.arch)),
		}
		if fromIPXE {
			mods = append(mods, dhcpv4.WithUserClass("iPXE", false))
		}
		req, err := dhcpv4.NewDiscovery(h.MAC, mods...)
		if err != nil {
			return "", err
		}
		resp, err := dhcp.Reply(req, true, dhcp.Config{
			ServerIP: renderAddress, HTTPPort: cfg.HTTPPort, EFIFile: cfg.EFIFile, ARM64File: cfg.ARM64File,
		})
		if err != nil {
			return "no answer: " + err.Error(), nil
		}
		return fmt.Sprintf("(appliance shown as %s)\n%s", renderAddress, resp.Summary()), nil
	}
}

// renderScript returns the script a machine in state pending gets: the one
// it boots on its first PXE boot. The install token is a placeholder (zeros), since
// only the daemon mints tokens.
func renderScript(cfg serveConfig) func(*profiles.Set, *profiles.Host, string) (string, error) {
	return func(set *profiles.Set, h *profiles.Host, arch string) (string, error) {
		f := ipxe.Facts{MAC: h.MAC, Arch: "x86_64", Platform: "efi"}
		switch arch {
		case "bios":
			f.Platform = "pcbios"
		case "arm64":
			f.Arch = "arm64"
		}
		d := ipxe.Follow(ipxe.Decide(f, set, false), ipxe.Step{Kind: ipxe.StepInstall, Token: "0000000000000000placeholder0000"})
		// What the daemon's ipxe.Handler puts in the script (httpRoutes).
		a := ipxe.Appliance{
			Base: "http://" + net.JoinHostPort(renderAddress.String(), strconv.Itoa(cfg.HTTPPort)),
			API:  "https://" + net.JoinHostPort(renderAddress.String(), strconv.Itoa(cfg.HTTPSPort)),
			CA:   caArchivePath,
		}
		return ipxe.Render(a, f, d)
	}
}
