package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rackboot/rackboot/initrd"
	"github.com/rackboot/rackboot/pki"
)

// The CA's places (docs/DESIGN.md, section 7, "TLS"): DATA/tls/ca.pem on
// the appliance, GET /ca.pem on the plain port, and the archive the
// per-machine script loads as the installer's second initrd, staged in the
// nbp directory (TFTP and /nbp/ serve that copy) and unpacked at
// agentCAPath, where the agent reads it.
const (
	tlsDir        = "tls"
	caURLPath     = "/ca.pem"
	caArchive     = "rackboot-ca.cpio.gz"
	caArchivePath = "/nbp/" + caArchive
	agentCAPath   = "etc/rackboot/ca.pem"
)

// applianceTLS returns the HTTPS listener's identity: the operator's
// --tls-cert and --tls-key, or the one generated in DATA/tls for the
// appliance's addresses (regenerated when they change). It writes the
// trust anchor to DATA/tls/ca.pem and the agent's CA archive to nbp.
func applianceTLS(cfg serveConfig, ifaces []bootInterface, nbp string, log *slog.Logger) (pki.Identity, error) {
	dir := filepath.Join(cfg.Data, tlsDir)
	names := tlsNames(cfg, ifaces)
	var id pki.Identity
	var err error
	if cfg.TLSCert != "" {
		if id, err = pki.Load(cfg.TLSCert, cfg.TLSKey); err != nil {
			return id, err
		}
		if miss := pki.Missing(id.Cert.Leaf, names); len(miss) > 0 {
			log.Warn("tls-cert does not name every address clients use: they will refuse it there", "path", cfg.TLSCert, "missing", miss)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return id, fmt.Errorf("tls: %w", err)
		}
		if err := pki.WriteCA(dir, id.CA); err != nil {
			return id, err
		}
	} else {
		if id, err = pki.Ensure(dir, names, time.Now()); err != nil {
			return id, err
		}
		switch {
		case id.Generated:
			log.Info("tls: CA and server certificate generated", "path", filepath.Join(dir, pki.CAFile), "names", names)
		case id.Renewed:
			log.Info("tls: server certificate renewed under the same CA", "names", names)
		}
	}
	var b bytes.Buffer
	if err := initrd.Overlay(&b, map[string][]byte{agentCAPath: id.CA}); err != nil {
		return id, fmt.Errorf("tls: CA archive: %w", err)
	}
	if err := os.WriteFile(filepath.Join(nbp, caArchive), b.Bytes(), 0o644); err != nil {
		return id, fmt.Errorf("tls: CA archive: %w", err)
	}
	return id, nil
}

// tlsNames are the names the server certificate must carry: the
// advertised address and every boot interface's, and loopback for the
// CLI on the appliance.
func tlsNames(cfg serveConfig, ifaces []bootInterface) []string {
	names := []string{"127.0.0.1", "localhost"}
	seen := map[string]bool{"127.0.0.1": true, "localhost": true}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	add(cfg.Advertise)
	for _, bi := range ifaces {
		add(bi.Advertise.String())
	}
	return names
}

// tlsConfig is the HTTPS listener's configuration.
func tlsConfig(id pki.Identity) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{id.Cert}, MinVersion: tls.VersionTLS12}
}

// apiOverHTTPS answers every request for the API on the plain port with
// 403 and where to go instead: the advertised address, else the one the
// client reached (never the Host header). It never reads the request's
// header or body: a token sent here has crossed in clear already, and
// nothing here may accept it.
func apiOverHTTPS(advertise string, httpsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := advertise
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok && host == "" {
			host = a.AddrPort().Addr().Unmap().String()
		}
		if host == "" {
			host = "HOST"
		}
		url := "https://" + net.JoinHostPort(host, strconv.Itoa(httpsPort))
		w.Header().Set("Connection", "close")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "{\"error\": \"the rackboot API is served over HTTPS only: use %s (the CA is DATA/tls/ca.pem on the appliance)\"}\n", url)
	})
}

// caHandler serves the trust anchor. Fetched over plain HTTP it is trust
// on first use: an admin copies DATA/tls/ca.pem from the appliance instead.
func caHandler(ca []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Length", strconv.Itoa(len(ca)))
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(ca) // a failed write is the client gone
	})
}
