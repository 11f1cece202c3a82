package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/rollout"
)

// Fleet is what the API needs of the profiles. *profiles.Set satisfies
// it; so does a wrapper that swaps Sets on reload. Implementations must be
// safe for concurrent use.
type Fleet interface {
	// Lookup returns the host with the given MAC address.
	Lookup(mac net.HardwareAddr) (*profiles.Host, bool)
	// Hosts returns every host, ordered by MAC address.
	Hosts() []*profiles.Host
	// Version returns the catalog's version with the given name.
	Version(name string) (*profiles.Version, bool)
}

// Server serves the agent API under /api/agent/ and the admin API under
// /api/. Mount it at "/api/". Set the fields before the first request;
// Server is safe for concurrent use.
type Server struct {
	// Registry keeps states and history. Required.
	Registry *registry.Registry
	// Fleet is the current profiles. Required.
	Fleet Fleet
	// Planner builds agents' plans. Required.
	Planner Planner
	// AdminToken guards the admin API (see AdminToken). Empty refuses
	// every admin request.
	AdminToken string
	// Events carries live progress and state changes to subscribers; set
	// the Registry's Notify to its Changed. Nil means no live events:
	// /api/events and log following then see nothing.
	Events *Events
	// BaseURL is the URL agents reach the appliance at, such as
	// "http://192.0.2.1:8080", used for artifact URLs in plans. Empty
	// means "http://" and the local address of the agent's connection: the
	// address the agent already reached.
	BaseURL string
	// ArtifactsPort is the port of that URL when BaseURL is empty: the
	// plain HTTP port artifacts are served on while the agent API is
	// reached over HTTPS (docs/DESIGN.md, section 7). Zero means the port
	// of the agent's connection.
	ArtifactsPort int
	// Profiles, if set, reports the served profiles and the last refused
	// edit at GET /api/profiles; ProfilesDir names their directory there.
	Profiles    ProfilesSource
	ProfilesDir string
	// VerifyAgent, if set, decides whether an agent request may speak for
	// the machine its MAC header names (the appliance checks the
	// requester's link-layer address, docs/DESIGN.md §7); a refused request
	// gets 403 before its token is looked at. Nil believes every request.
	VerifyAgent func(r *http.Request, mac net.HardwareAddr) error
	// Peers, if set, takes the agents' holdings reports of peer
	// distribution (docs/DESIGN.md, "Peer distribution"). Nil: peer
	// distribution is off, and the path answers 404.
	Peers Peers
	// Held, if set, says why a pending host is held back from its
	// installer ("" when it is not): the registry's Hold. The hosts
	// views show it, and a plan of a held host is refused.
	Held func(mac net.HardwareAddr, pendingVersion string) string
	// Power, if set, reaches hosts' BMCs: POST /api/power and reinstall
	// requests with power_cycle. Nil answers those 503.
	Power Power
	// Rollouts, if set, runs staged rollouts: /api/rollouts. Nil answers
	// their start 503 and lists none.
	Rollouts *rollout.Engine
	// RolloutsElsewhere, if set, says why this appliance does not drive
	// the rollouts now, naming the one that does ("" when it does them):
	// appliances sharing a store drive rollouts one at a time, and the
	// others answer /api/rollouts 409 with that message.
	RolloutsElsewhere func() string
	// Appliances, if set, lists the appliances sharing the store, this
	// one included: GET /api/appliances.
	Appliances func(ctx context.Context) ([]ApplianceView, error)
	// Log receives a line per request that changes something or fails.
	// Nil discards.
	Log *slog.Logger

	once     sync.Once
	mux      *http.ServeMux
	progress progressTable
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.once.Do(s.routes)
	w.Header().Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /api/agent/plan", s.agent(s.plan))
	m.HandleFunc("POST /api/agent/progress", s.agent(s.reportProgress))
	m.HandleFunc("POST /api/agent/log", s.agent(s.reportLog))
	m.HandleFunc("POST /api/agent/done", s.agentWith(func(ctx context.Context, mac net.HardwareAddr, tok string) (registry.HostRecord, error) {
		return s.Registry.AuthenticateDone(ctx, mac, tok)
	}, s.reportDone))
	m.HandleFunc("POST /api/agent/failed", s.agentWith(func(ctx context.Context, mac net.HardwareAddr, tok string) (registry.HostRecord, error) {
		return s.Registry.AuthenticateFailed(ctx, mac, tok)
	}, s.reportFailed))
	m.HandleFunc("POST "+agentapi.PathHoldings, s.agent(s.reportHoldings))

	m.HandleFunc("GET /api/hosts", s.admin(s.listHosts))
	m.HandleFunc("DELETE /api/hosts", s.admin(s.forgetHosts))
	m.HandleFunc("GET /api/hosts/{mac}", s.admin(s.getHost))
	m.HandleFunc("GET /api/hosts/{mac}/history", s.admin(s.history))
	m.HandleFunc("GET /api/hosts/{mac}/log", s.admin(s.hostLog))
	m.HandleFunc("GET /api/versions", s.admin(s.versions))
	m.HandleFunc("POST /api/reinstall", s.admin(s.reinstall))
	m.HandleFunc("POST /api/power", s.admin(s.power))
	m.HandleFunc("POST /api/rollouts", s.admin(s.startRollout))
	m.HandleFunc("GET /api/rollouts", s.admin(s.listRollouts))
	m.HandleFunc("GET /api/rollouts/{id}", s.admin(s.getRollout))
	m.HandleFunc("POST /api/rollouts/{id}/{op}", s.admin(s.controlRollout))
	m.HandleFunc("GET /api/events", s.admin(s.events))
	m.HandleFunc("GET /api/profiles", s.admin(s.profilesStatus))
	m.HandleFunc("GET /api/appliances", s.admin(s.appliances))
	s.mux = m
}

func (s *Server) publish(ev Event) {
	if s.Events != nil {
		s.Events.Publish(ev)
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// errorBody is every error response: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil { // our own types always marshal
		status, b = http.StatusInternalServerError, []byte(`{"error": "internal error"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b) // a failed write is the client gone
}

// remoteIP is the client's address without its port, for logs.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
