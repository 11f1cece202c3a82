package lab

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
)

// HTTPSClient is HTTPClient(ns) verifying servers against the appliance's
// CA in its data directory (DATA/tls/ca.pem), and no other.
func (n *Net) HTTPSClient(ns, data string) (*http.Client, error) {
	file := filepath.Join(data, "tls", "ca.pem")
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("lab: the appliance's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("lab: %s: no PEM certificate", file)
	}
	hc := n.HTTPClient(ns)
	tr, ok := hc.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("lab: HTTPClient's transport is a %T", hc.Transport)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return hc, nil
}
