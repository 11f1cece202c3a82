package agentapi

import (
	"slices"
	"strings"
)

// The agent API's URL paths on the appliance. Every request carries
// "Authorization: Bearer TOKEN" (the install token of ParamToken) and
// MACHeader.
const (
	PathPlan     = "/api/agent/plan"     // GET: PlanResponse
	PathProgress = "/api/agent/progress" // POST Progress: 204
	PathLog      = "/api/agent/log"      // POST Log: 204
	PathDone     = "/api/agent/done"     // POST Done: Result
	PathFailed   = "/api/agent/failed"   // POST Failed: Result
)

// MACHeader carries the agent's MAC address (its ParamMAC) on every agent
// request. The token must have been minted for that MAC: a token copied to
// another machine, or a machine confused about its identity, is refused.
const MACHeader = "Rackboot-MAC"

// Kernel command-line parameters: the iPXE script sets the first three
// for the installer; an admin may add ParamAfter to the profile's
// installer cmdline. The profiles refuse any other "rackboot." parameter.
const (
	ParamServer = "rackboot.server" // https://IP:PORT[,https://IP:PORT]...: the agent APIs, the serving appliance's first (plain http accepted)
	ParamMAC    = "rackboot.mac"    // the boot NIC, whose token this is
	ParamToken  = "rackboot.token"  // the one-attempt install token
	ParamAfter  = "rackboot.after"  // AfterReboot (default) or AfterPoweroff
)

// What the machine does once the install is done (ParamAfter).
const (
	AfterReboot   = "reboot"
	AfterPoweroff = "poweroff"
)

// AfterArg reports whether a, one kernel argument, is ParamAfter with a
// value the agent knows: the one "rackboot." parameter a profile may set.
func AfterArg(a string) bool {
	v, ok := strings.CutPrefix(a, ParamAfter+"=")
	return ok && (v == AfterReboot || v == AfterPoweroff)
}

// Phase is a step of an install, as the agent reports it.
type Phase string

// The phases, in the order an install goes through them. A whole-disk
// image is written before PhasePartition, since the layout's partitions
// are added to the image's own table.
const (
	PhaseBoot        Phase = "boot"        // mounts, console, kernel command line
	PhaseModules     Phase = "modules"     // kernel modules
	PhaseNetwork     Phase = "network"     // NIC up, DHCP
	PhasePlan        Phase = "plan"        // GET the plan
	PhaseDisk        Phase = "disk"        // waiting for and choosing the target disk
	PhasePartition   Phase = "partition"   // the partition table
	PhaseImage       Phase = "image"       // streaming the image (with bytes done and total)
	PhaseFilesystems Phase = "filesystems" // ESP, FAT32 and config drive, zeroing empty partitions
	PhaseSync        Phase = "sync"        // flushing the disk
	PhaseBootEntry   Phase = "boot-entry"  // the UEFI boot entry (never fails an attempt)
	PhaseReport      Phase = "report"      // POST done
)

// Phases lists every phase, in order.
var Phases = []Phase{PhaseBoot, PhaseModules, PhaseNetwork, PhasePlan, PhaseDisk, PhasePartition,
	PhaseImage, PhaseFilesystems, PhaseSync, PhaseBootEntry, PhaseReport}

// Valid reports whether p is one of Phases.
func (p Phase) Valid() bool { return slices.Contains(Phases, p) }

// Progress is the body of POST /api/agent/progress: a snapshot of the
// current step.
type Progress struct {
	Phase Phase `json:"phase"`
	// Done and Total are decompressed image bytes written and expected
	// while streaming (Total 0: unknown), 0 otherwise.
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
	// Rate is bytes written per second over the last interval.
	Rate float64 `json:"rate"`
	// Fetched and Reused, for a chunked image: compressed bytes fetched
	// so far (from the appliance and from peers), and image bytes taken
	// from the disk (already in place, or copied from the old image).
	// Done counts both the reused bytes and those written.
	Fetched int64 `json:"fetched,omitempty"`
	Reused  int64 `json:"reused,omitempty"`
	// FetchedPeers is the part of Fetched that came from peers (peer
	// distribution); the rest came from the appliance.
	FetchedPeers int64 `json:"fetched_peers,omitempty"`
}

// Log is the body of POST /api/agent/log: a batch of console lines.
type Log struct {
	Lines []string `json:"lines"`
	// Again says these lines were sent before and got no answer: the
	// appliance that took them may have stored them and died. An
	// appliance whose log of the attempt already ends with them stores
	// them no second time.
	Again bool `json:"again,omitempty"`
}

// Done is the body of POST /api/agent/done.
type Done struct {
	// SHA256 is the hex digest of the image as the agent received it; it
	// must equal the plan's.
	SHA256 string `json:"sha256"`
	// Bytes is the size of the image now on the disk, verified: it must
	// equal the plan's RawSize when the plan states one.
	Bytes      int64 `json:"bytes"`
	DurationMS int64 `json:"duration_ms"`
	// Written is how many of the image's bytes the agent wrote to the
	// disk; 0 means Bytes (a streamed image is written whole). A chunked
	// image writes only the chunks not already in place.
	Written int64 `json:"written,omitempty"`
	// Fetched is the compressed bytes received for the image, from the
	// appliance and from peers (0 when not measured), Reused the image
	// bytes taken from the disk instead (chunked images only).
	Fetched int64 `json:"fetched,omitempty"`
	Reused  int64 `json:"reused,omitempty"`
	// FetchedPeers is the part of Fetched that came from peers.
	FetchedPeers int64 `json:"fetched_peers,omitempty"`
}

// Failed is the body of POST /api/agent/failed.
type Failed struct {
	Error string `json:"error"`
	// Phase is where the install failed; empty when unknown.
	Phase Phase `json:"phase,omitempty"`
}

// Result answers Done and Failed: the host's state afterwards
// ("installed", "pending" for another attempt, "failed").
type Result struct {
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason,omitempty"`
}

// Limits of the agent's requests, which the appliance enforces.
const (
	MaxReportBytes = 16 << 10 // a Progress, Done or Failed body
	MaxLogBody     = 1 << 20  // one Log body
	MaxLogLines    = 10000    // lines of one Log
	MaxLineBytes   = 4096     // a line is cut to this
	MaxErrorBytes  = 4096     // a Failed error is cut to this
)
