package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
)

// caFile is where the appliance's CA is in the installer: the per-machine
// script loads it as a second initrd (rackboot-ca.cpio.gz), which the kernel
// unpacks over the installer's own (docs/DESIGN.md, section 7, "TLS").
const caFile = "/etc/rackboot/ca.pem"

// loadCA returns the roots to verify https appliances against: the CA in
// file, and no other (the initramfs has no system roots, and no public CA
// may vouch for an appliance). The appliances of a fleet share one CA.
// Appliances all on http need none: nil. An https appliance without a
// readable CA is an error: the agent does not talk to a server it cannot
// verify.
func loadCA(servers []*url.URL, file string) (*x509.CertPool, error) {
	i := slices.IndexFunc(servers, func(u *url.URL) bool { return u.Scheme == "https" })
	if i < 0 {
		return nil, nil
	}
	server := servers[i]
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no CA at %s to verify %s: the installer will not send its token to an appliance it cannot verify (the boot script loads the CA as the rackboot-ca.cpio.gz initrd: was it dropped from the script?)", file, server)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the appliance's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate, so %s cannot be verified", file, server)
	}
	return pool, nil
}
