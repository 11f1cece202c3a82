package powertest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// RedfishBMC is a Redfish service double (DMTF DSP0266) for the
// ComputerSystem power and boot-override subset a provisioning appliance
// uses, like net/http/httptest is for HTTP: serve it with
// httptest.NewServer or NewTLSServer, or any http.Server.
//
//   - GET /redfish/v1/ (anonymous, as the spec says), SessionService.
//   - POST /redfish/v1/SessionService/Sessions {UserName, Password} → 201
//     with X-Auth-Token and Location; DELETE of the session → 204.
//   - Every other resource needs X-Auth-Token or Basic auth; wrong or no
//     credentials → 401 with a Redfish error body.
//   - GET /redfish/v1/Systems and /redfish/v1/Systems/{id}: PowerState,
//     Boot (BootSourceOverrideTarget/Enabled with their
//     @Redfish.AllowableValues), Actions #ComputerSystem.Reset with
//     ResetType@Redfish.AllowableValues.
//   - PATCH /redfish/v1/Systems/{id} {"Boot": {…}}: Pxe + Once is remembered
//     and used up by the next PowerOn or Reset (netboot=true); Disabled or
//     None clears it.
//   - POST …/Actions/ComputerSystem.Reset {"ResetType": …} → 204: On,
//     ForceOff, GracefulShutdown, ForceRestart, PowerCycle.
//
// Set the exported fields before serving. A RedfishBMC is safe for
// concurrent use.
type RedfishBMC struct {
	User, Password string
	Systems        map[string]Machine // Id → machine
	// ResetTypes, when not nil, replaces the advertised
	// ResetType@Redfish.AllowableValues (and what Reset accepts); e.g.
	// without PowerCycle, as many BMCs have it.
	ResetTypes []string
	// Delay, when set, is slept before answering any request (a slow BMC).
	Delay time.Duration

	mu       sync.Mutex
	sessions map[string]string // token → session id
	nextID   int
	pending  map[string]bool // system → one-time network boot asked for
	log      recorder
	requests int
}

// DefaultResetTypes is what RedfishBMC advertises by default.
var DefaultResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"}

// Log returns what the double did to its machines, in order.
func (b *RedfishBMC) Log() []Record { return b.log.all() }

// Sessions returns the number of open sessions (a client that logs out
// leaves none).
func (b *RedfishBMC) Sessions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// Requests returns the number of requests served.
func (b *RedfishBMC) Requests() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests
}

// NetBootPending reports whether a one-time network boot is pending for
// the system.
func (b *RedfishBMC) NetBootPending(system string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending[system]
}

const (
	rootPath     = "/redfish/v1/"
	sessionsPath = "/redfish/v1/SessionService/Sessions"
	systemsPath  = "/redfish/v1/Systems"
	resetSuffix  = "/Actions/ComputerSystem.Reset"
)

func (b *RedfishBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.requests++
	b.mu.Unlock()
	if b.Delay > 0 {
		select {
		case <-time.After(b.Delay):
		case <-r.Context().Done():
			return
		}
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/redfish":
		writeJSON(w, http.StatusOK, map[string]any{"v1": rootPath})
		return
	case path == "/redfish/v1" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id":      rootPath,
			"@odata.type":    "#ServiceRoot.v1_5_0.ServiceRoot",
			"Id":             "RootService",
			"Name":           "rackboot Redfish double",
			"RedfishVersion": "1.11.0",
			"Systems":        link(systemsPath),
			"SessionService": link("/redfish/v1/SessionService"),
			"Links":          map[string]any{"Sessions": link(sessionsPath)},
		})
		return
	case path == sessionsPath && r.Method == http.MethodPost:
		b.login(w, r)
		return
	}
	if !b.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="redfish"`)
		writeError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "invalid credentials")
		return
	}
	switch {
	case strings.HasPrefix(path, sessionsPath+"/") && r.Method == http.MethodDelete:
		b.logout(w, strings.TrimPrefix(path, sessionsPath+"/"))
	case path == "/redfish/v1/SessionService" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id": "/redfish/v1/SessionService", "Id": "SessionService", "Name": "Session Service",
			"ServiceEnabled": true, "Sessions": link(sessionsPath),
		})
	case path == systemsPath && r.Method == http.MethodGet:
		ids := make([]string, 0, len(b.Systems))
		for id := range b.Systems {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		members := make([]any, 0, len(ids))
		for _, id := range ids {
			members = append(members, link(systemsPath+"/"+id))
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"@odata.id": systemsPath, "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
			"Name": "Computer System Collection", "Members@odata.count": len(members), "Members": members,
		})
	case strings.HasPrefix(path, systemsPath+"/"):
		rest := strings.TrimPrefix(path, systemsPath+"/")
		id, action, _ := strings.Cut(rest, "/")
		m, ok := b.Systems[id]
		if !ok {
			writeError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no system "+id)
			return
		}
		switch {
		case action == "" && r.Method == http.MethodGet:
			b.getSystem(w, id, m)
		case action == "" && r.Method == http.MethodPatch:
			b.patchSystem(w, r, id)
		case "/"+action == resetSuffix && r.Method == http.MethodPost:
			b.reset(w, r, id, m)
		default:
			writeError(w, http.StatusMethodNotAllowed, "Base.1.8.OperationNotAllowed", r.Method+" "+path)
		}
	default:
		writeError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", path)
	}
}

func (b *RedfishBMC) login(w http.ResponseWriter, r *http.Request) {
	var body struct{ UserName, Password string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", err.Error())
		return
	}
	if !b.credentialsOK(body.UserName, body.Password) {
		writeError(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "invalid credentials")
		return
	}
	token := randomHex()
	b.mu.Lock()
	if b.sessions == nil {
		b.sessions = map[string]string{}
	}
	b.nextID++
	id := fmt.Sprint(b.nextID)
	b.sessions[token] = id
	b.mu.Unlock()
	w.Header().Set("X-Auth-Token", token)
	w.Header().Set("Location", sessionsPath+"/"+id)
	writeJSON(w, http.StatusCreated, map[string]any{
		"@odata.id": sessionsPath + "/" + id, "Id": id, "Name": "User Session", "UserName": body.UserName,
	})
}

func (b *RedfishBMC) logout(w http.ResponseWriter, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for token, sid := range b.sessions {
		if sid == id {
			delete(b.sessions, token)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no session "+id)
}

func (b *RedfishBMC) credentialsOK(user, pass string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(b.User))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(b.Password))
	return u&p == 1
}

func (b *RedfishBMC) authorized(r *http.Request) bool {
	if token := r.Header.Get("X-Auth-Token"); token != "" {
		b.mu.Lock()
		defer b.mu.Unlock()
		_, ok := b.sessions[token]
		return ok
	}
	if user, pass, ok := r.BasicAuth(); ok {
		return b.credentialsOK(user, pass)
	}
	return false
}

func (b *RedfishBMC) resetTypes() []string {
	if b.ResetTypes != nil {
		return b.ResetTypes
	}
	return DefaultResetTypes
}

func (b *RedfishBMC) getSystem(w http.ResponseWriter, id string, m Machine) {
	power := "Off"
	if m.IsOn() {
		power = "On"
	}
	target, enabled := "None", "Disabled"
	if b.NetBootPending(id) {
		target, enabled = "Pxe", "Once"
	}
	self := systemsPath + "/" + id
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id":   self,
		"@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
		"Id":          id,
		"Name":        id,
		"SystemType":  "Physical",
		"PowerState":  power,
		"Boot": map[string]any{
			"BootSourceOverrideTarget":                          target,
			"BootSourceOverrideEnabled":                         enabled,
			"BootSourceOverrideTarget@Redfish.AllowableValues":  []string{"None", "Pxe", "Hdd", "Cd", "BiosSetup"},
			"BootSourceOverrideEnabled@Redfish.AllowableValues": []string{"Disabled", "Once", "Continuous"},
		},
		"Actions": map[string]any{
			"#ComputerSystem.Reset": map[string]any{
				"target":                            self + resetSuffix,
				"ResetType@Redfish.AllowableValues": b.resetTypes(),
			},
		},
	})
}

func (b *RedfishBMC) patchSystem(w http.ResponseWriter, r *http.Request, id string) {
	var body struct {
		Boot *struct {
			BootSourceOverrideTarget  string
			BootSourceOverrideEnabled string
		}
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", err.Error())
		return
	}
	if body.Boot == nil {
		writeError(w, http.StatusBadRequest, "Base.1.8.PropertyNotWritable", "only Boot is writable here")
		return
	}
	t, e := body.Boot.BootSourceOverrideTarget, body.Boot.BootSourceOverrideEnabled
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[string]bool{}
	}
	switch {
	case t == "Pxe" && e == "Once":
		b.pending[id] = true
	case t == "None" || e == "Disabled" || t == "Hdd":
		b.pending[id] = false
	default:
		writeError(w, http.StatusBadRequest, "Base.1.8.PropertyValueNotInList",
			fmt.Sprintf("the double supports Boot {Pxe, Once} and clearing it, not {%q, %q}", t, e))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// takePending uses up the system's pending network boot.
func (b *RedfishBMC) takePending(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pending[id]
	delete(b.pending, id)
	return p
}

func (b *RedfishBMC) reset(w http.ResponseWriter, r *http.Request, id string, m Machine) {
	var body struct{ ResetType string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", err.Error())
		return
	}
	rt := body.ResetType
	if !slices.Contains(b.resetTypes(), rt) {
		writeError(w, http.StatusBadRequest, "Base.1.8.ActionParameterNotSupported", "ResetType "+rt+" not supported")
		return
	}
	on := m.IsOn()
	var err error
	switch rt {
	case "On":
		if on {
			break
		}
		nb := b.takePending(id)
		b.log.add(Record{System: id, Action: rt, NetBoot: nb, Time: time.Now()})
		err = m.PowerOn(nb)
	case "ForceOff", "GracefulShutdown":
		if !on {
			break
		}
		b.log.add(Record{System: id, Action: rt, Time: time.Now()})
		err = m.PowerOff()
	case "ForceRestart", "PowerCycle":
		nb := b.takePending(id)
		b.log.add(Record{System: id, Action: rt, NetBoot: nb, Time: time.Now()})
		if on {
			err = m.Reset(nb)
		} else {
			err = m.PowerOn(nb)
		}
	default:
		writeError(w, http.StatusBadRequest, "Base.1.8.ActionParameterNotSupported", "ResetType "+rt+" not supported by the double")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Base.1.8.InternalError", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func link(path string) map[string]string { return map[string]string{"@odata.id": path} }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes a Redfish error response (DSP0266 §9.6).
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"@Message.ExtendedInfo": []any{map[string]any{"MessageId": code, "Message": msg}},
	}})
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
