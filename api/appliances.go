package api

import (
	"net/http"
	"time"
)

// ApplianceView is one appliance as GET /api/appliances shows it: every
// appliance sharing this one's store (docs/DESIGN.md, "Several
// appliances"), or this one alone on an embedded store.
type ApplianceView struct {
	ID string `json:"id"`
	// API are its agent and admin API URLs.
	API []string `json:"api"`
	// Profiles is the digest of the profiles it serves.
	Profiles string `json:"profiles"`
	// Leader says it drives the staged rollouts.
	Leader  bool      `json:"leader"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started"`
	// Self marks the appliance that answered.
	Self bool `json:"self,omitempty"`
}

func (s *Server) appliances(w http.ResponseWriter, r *http.Request) {
	if s.Appliances == nil {
		writeError(w, http.StatusNotFound, "this appliance does not list appliances")
		return
	}
	vs, err := s.Appliances(r.Context())
	if err != nil {
		s.log().Error("cannot list the appliances", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot list the appliances: "+err.Error())
		return
	}
	if vs == nil {
		vs = []ApplianceView{}
	}
	writeJSON(w, http.StatusOK, vs)
}
