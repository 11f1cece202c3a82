package registry

import "time"

// State is where a machine is in its install lifecycle (docs/DESIGN.md,
// "The host state machine").
type State string

// The states of a machine. A machine without a record is unknown.
const (
	// StateDiscovered: not in the profiles, PXE-booted while discovery was
	// on. It becomes pending once an admin adds it to the profiles.
	StateDiscovered State = "discovered"
	// StatePending: to be installed at its next PXE boot. A host of the
	// profiles that was never seen is pending.
	StatePending State = "pending"
	// StateInstalling: its agent fetched the install plan.
	StateInstalling State = "installing"
	// StateInstalled: its agent reported success; it boots from its disk
	// until an explicit reinstall, whatever its profile says later.
	StateInstalled State = "installed"
	// StateFailed: MaxAttempts attempts in a row failed; it boots nothing
	// destructive until an explicit reinstall.
	StateFailed State = "failed"
)

// Valid reports whether s is one of the State constants.
func (s State) Valid() bool {
	switch s {
	case StateDiscovered, StatePending, StateInstalling, StateInstalled, StateFailed:
		return true
	}
	return false
}

// Version names an operating-system version of the catalog. Number orders
// versions: "which machines run less than 12" is a question of numbers.
type Version struct {
	Name   string `json:"name"`
	Number int    `json:"number"`
}

// IsZero reports whether v names no version.
func (v Version) IsZero() bool { return v.Name == "" && v.Number == 0 }

// Result is how an attempt ended.
type Result string

// Results of an attempt; "" while it runs.
const (
	ResultSuccess Result = "success"
	ResultFailed  Result = "failed"
	// ResultSuperseded: a reinstall request replaced the attempt while it
	// ran; it counts as neither success nor failure.
	ResultSuperseded Result = "superseded"
)

// HostRecord is what the registry knows about one machine. Records are
// values: a Store hands out copies, and changes go through Store.Update.
type HostRecord struct {
	// MAC is the machine's boot interface, lower-case and colon-separated
	// (net.HardwareAddr.String); it is the record's key.
	MAC      string `json:"mac"`
	Hostname string `json:"hostname,omitempty"`
	State    State  `json:"state"`
	// Since is when the machine entered State.
	Since time.Time `json:"since,omitzero"`
	// Version is the version last installed successfully: what the disk
	// holds, as far as rackboot knows. It stays while a reinstall is
	// pending or fails, so "which machines run less than N" stays truthful.
	Version Version `json:"version,omitzero"`
	// Attempt is the number of the running or last attempt since the last
	// reinstall request (1-based; 0 before the first).
	Attempt int `json:"attempt"`
	// LastID is the ID of the newest attempt ever recorded for the host;
	// IDs keep growing across reinstalls.
	LastID int `json:"last_id,omitempty"`
	// PendingVersion overrides the profile's version for the next install
	// (a canary rollout); it is cleared when an install succeeds.
	PendingVersion string `json:"pending_version,omitempty"`
	// Reason says why the host is in its state, for people.
	Reason string `json:"reason,omitempty"`
	// LastError is the error of the last failed attempt, cleared by success
	// and by reinstall.
	LastError string    `json:"last_error,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// LastBoot is the last time the machine asked for its iPXE script.
	LastBoot time.Time `json:"last_boot,omitzero"`
	// Reinstall is the last reinstall request: who, when, why.
	Reinstall *Reinstall `json:"reinstall,omitempty"`
	// Current is the running attempt while the host is installing.
	Current *Attempt `json:"current,omitempty"`
	// Token is the stored half of the install token minted for the next or
	// running attempt: its digest, never the token.
	Token *Token `json:"token,omitempty"`
	// DoneToken is the stored half of the token whose success report
	// (done) was accepted, for a short while: the same report sent again
	// with it, because the agent never got the first answer, is answered
	// with the host as it is, not refused (Registry.Done).
	DoneToken *Token `json:"done_token,omitempty"`
	// FailedToken is the same for the token whose attempt ended failed
	// by its agent's report (failed, or a done with another digest than
	// the plan's): the same report sent again, at this appliance or at
	// another of the fleet, is answered with the host as it is, and
	// records nothing (Registry.Fail).
	FailedToken *Token `json:"failed_token,omitempty"`
	// Power are the last power actions through the host's BMC, oldest
	// first (RecordPower).
	Power []PowerAction `json:"power,omitempty"`
}

// Reinstall records an explicit request to install a machine again.
type Reinstall struct {
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	// Version overrides the profile's version, or "".
	Version string `json:"version,omitempty"`
	// WipeData lets the first attempt after the request destroy
	// partitions earlier installs preserved that the layout no longer
	// keeps as they are (`rackboot reinstall --wipe-data`); the attempts
	// after it are protected again. See HostRecord.WipeData.
	WipeData bool `json:"wipe_data,omitempty"`
}

// WipeData reports whether the install of h's agent may destroy
// preserved partitions (agentapi.Plan.WipeData): the running attempt was
// started with that permission, or the host is pending for the first
// attempt after a reinstall request that gave it. A reinstall resets the
// attempt count, so the permission ends with that one attempt, however it
// ends.
func (h HostRecord) WipeData() bool {
	if h.Current != nil {
		return h.Current.WipeData != nil
	}
	return h.State == StatePending && h.Attempt == 0 && h.Reinstall != nil && h.Reinstall.WipeData
}

// Token is what the registry keeps of an install token. The token itself
// exists only in the iPXE script and the agent's kernel command line.
type Token struct {
	// SHA256 is the hex digest of the token.
	SHA256 string `json:"sha256"`
	// Attempt is the attempt the token is valid for.
	Attempt int       `json:"attempt"`
	Expires time.Time `json:"expires"`
	// Report identifies, in DoneToken and FailedToken, the report
	// accepted with the token (doneKey, failedKey): only that report
	// sent again gets the answer it got.
	Report string `json:"report,omitempty"`
}

// Attempt is one install attempt: the history record of docs/DESIGN.md.
type Attempt struct {
	// ID identifies the attempt among the host's attempts; it grows across
	// reinstalls, unlike Number.
	ID int `json:"id"`
	// Number counts attempts since the last reinstall request, from 1.
	Number   int    `json:"attempt"`
	MAC      string `json:"mac"`
	Hostname string `json:"hostname,omitempty"`
	// Version is the version the attempt installs.
	Version Version `json:"version,omitzero"`
	// ImageSHA256 is the digest of the image as published, from the plan.
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// ProfileDigest identifies the resolved profile (the plan) the agent
	// was given.
	ProfileDigest string `json:"profile_digest,omitempty"`
	// ImageRawSize is the image's decompressed size from the plan, when
	// the appliance measured it: a success report must say the agent
	// wrote exactly that many bytes.
	ImageRawSize int64 `json:"image_raw_size,omitempty"`
	// Writing is when the appliance first heard the agent report writing
	// the image (image progress with bytes done): a success report for
	// an attempt with an image and no such report is refused.
	Writing time.Time `json:"writing,omitzero"`
	// Reason says why the attempt ran: a first install or a reinstall
	// request's reason.
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Result   Result    `json:"result,omitempty"`
	// BytesWritten is what the agent reports it wrote to the disk: the
	// whole image, or for a chunked image the chunks that were not
	// already in place (agentapi.Done.Written).
	BytesWritten int64 `json:"bytes_written,omitempty"`
	// BytesFetched is the compressed bytes the agent received for the
	// image, from the appliance and from peers, 0 when it did not
	// measure them; BytesReused the image bytes it took from the disk
	// instead, already in place or copied from the old image (chunked
	// images only); BytesFetchedPeers the part of BytesFetched that came
	// from peers (peer distribution).
	BytesFetched      int64 `json:"bytes_fetched,omitempty"`
	BytesReused       int64 `json:"bytes_reused,omitempty"`
	BytesFetchedPeers int64 `json:"bytes_fetched_peers,omitempty"`
	// DurationMS is the wall time from plan fetch to the final report, as
	// the appliance measured it; WriteMS is the agent's own measure.
	DurationMS int64  `json:"duration_ms,omitempty"`
	WriteMS    int64  `json:"write_ms,omitempty"`
	Phase      string `json:"phase,omitempty"` // the phase that failed
	Error      string `json:"error,omitempty"`
	// WipeData is the reinstall request (who, when, why) that let this
	// attempt destroy preserved partitions the layout no longer keeps;
	// nil for every attempt without that permission.
	WipeData *Reinstall `json:"wipe_data,omitempty"`
	// Log is the agent's log, filled only by callers that ask for it:
	// stores keep logs apart (Store.AppendLog) and ignore this field.
	Log []string `json:"log,omitempty"`
}
