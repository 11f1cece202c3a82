package rack

import (
	"net"
	"path"
	"regexp"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
)

// InstallMilestones are the moments of an install, from power-on to the
// agent's last line, read from rackboot's log (entries about mac) and the
// machine's console.
func InstallMilestones(mac net.HardwareAddr) []lab.Milestone {
	return []lab.Milestone{
		{Name: "pxe", Server: Answered(mac)},
		{Name: "script", Server: ScriptServed(mac, "installer")},
		{Name: "kernel", Server: ArtifactServed(mac, KernelFile)},
		{Name: "agent", Serial: `rackboot-agent starting`},
		{Name: "plan", Serial: `msg="plan received"`},
		{Name: "written", Serial: `msg="image written"`},
		{Name: "done", Serial: regexp.QuoteMeta(AgentDone)},
	}
}

// BootMilestones are the moments of a boot from disk: rackboot's answer
// that the machine is installed, then the installed OS.
func BootMilestones(mac net.HardwareAddr) []lab.Milestone {
	return []lab.Milestone{
		{Name: "pxe", Server: Answered(mac)},
		{Name: "local", Server: ScriptServed(mac, "local")},
		{Name: "os", Serial: "^" + osimage.MarkerOS},
		{Name: "os done", Serial: "^" + osimage.MarkerDone},
	}
}

// Answered matches rackboot's proxy-DHCP answers to mac.
func Answered(mac net.HardwareAddr) func(lab.LogEntry) bool {
	return func(e lab.LogEntry) bool { return e.Msg == "answered" && sameMAC(e.Str("mac"), mac) }
}

// ScriptServed matches the per-machine iPXE script served to mac with
// outcome (ipxe.Outcome*: "installer", "local", "failed").
func ScriptServed(mac net.HardwareAddr, outcome string) func(lab.LogEntry) bool {
	return func(e lab.LogEntry) bool {
		return e.Msg == "script served" && e.Str("outcome") == outcome && sameMAC(e.Str("mac"), mac)
	}
}

// ArtifactServed matches the artifact name sent (wholly or in part) to
// mac.
func ArtifactServed(mac net.HardwareAddr, name string) func(lab.LogEntry) bool {
	return func(e lab.LogEntry) bool {
		st := e.Str("status")
		return e.Msg == "artifact request" && path.Base(e.Str("path")) == name &&
			(st == "200" || st == "206") && sameMAC(e.Str("mac"), mac)
	}
}

// sameMAC reports whether s spells mac, in any notation net.ParseMAC
// reads (the artifacts log has the dashes of the ?mac= parameter).
func sameMAC(s string, mac net.HardwareAddr) bool {
	hw, err := net.ParseMAC(s)
	return err == nil && hw.String() == mac.String()
}
