package api

import (
	"errors"
	"net/http"

	"github.com/rackboot/rackboot/profiles"
)

// ProfilesStatus is what GET /api/profiles returns: the snapshot being
// served and, when the last edit was refused, why. An admin whose edit "did
// nothing" finds here the file:line that kept it out.
type ProfilesStatus struct {
	Dir     string   `json:"dir"`
	Files   []string `json:"files"`
	Digest  string   `json:"digest"`
	Hosts   int      `json:"hosts"`
	Healthy bool     `json:"healthy"`
	// Errors are the problems of the last refused edit, one per line as
	// file:line: message; empty when the files on disk are being served.
	Errors []string `json:"errors,omitempty"`
}

// ProfilesSource is what the status endpoint needs of the profiles
// watcher; *profiles.Watcher satisfies it.
type ProfilesSource interface {
	Current() *profiles.Set
	LastError() error
}

func (s *Server) profilesStatus(w http.ResponseWriter, _ *http.Request) {
	if s.Profiles == nil {
		http.Error(w, "profiles status not available", http.StatusNotFound)
		return
	}
	set := s.Profiles.Current()
	st := ProfilesStatus{Dir: s.ProfilesDir, Files: set.Files(), Digest: set.Digest(), Hosts: set.Len(), Healthy: true}
	if err := s.Profiles.LastError(); err != nil {
		st.Healthy = false
		var list profiles.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				st.Errors = append(st.Errors, e.Error())
			}
		} else {
			st.Errors = []string{err.Error()}
		}
	}
	writeJSON(w, http.StatusOK, st)
}
