package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files of the TLS directory (DATA/tls).
const (
	// CAFile is the trust anchor in use, PEM, readable by all: the
	// generated CA, or the top of an operator's chain. The daemon
	// rewrites it at each start; the CLI on the appliance reads it.
	CAFile = "ca.pem"
	// The generated CA and its key, and the server certificate it signed
	// and its key. Keys are 0600.
	ApplianceCAFile    = "appliance-ca.pem"
	ApplianceCAKeyFile = "appliance-ca-key.pem"
	ServerCertFile     = "server.pem"
	ServerKeyFile      = "server-key.pem"
)

// Lifetimes of what Ensure generates. The CA outlives the machines it
// installs; the server certificate is short enough that a leaked key
// expires, and is renewed at a start within renewBefore of its end.
const (
	caLifetime     = 20 * 365 * 24 * time.Hour
	serverLifetime = 398 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
	// backdate covers clocks of machines a little behind the appliance's:
	// an installer booted before NTP may be minutes off.
	backdate = 24 * time.Hour
)

// Identity is the appliance's TLS identity.
type Identity struct {
	// Cert is the server certificate chain and key the HTTPS listener
	// presents.
	Cert tls.Certificate
	// CA is the trust anchor clients verify Cert against, PEM.
	CA []byte
	// Generated says Ensure created the CA this run; Renewed says it
	// signed a new server certificate (first start, an address change or
	// near expiry).
	Generated, Renewed bool
}

// Ensure returns the appliance's generated identity in dir, creating dir,
// the CA (ECDSA P-256) and the server certificate on first use, and
// signing a new server certificate, with the same CA, when the one on disk
// does not name every one of names (IP addresses or DNS names), is not
// signed by the CA, or ends within 30 days of now. It writes dir/ca.pem.
func Ensure(dir string, names []string, now time.Time) (Identity, error) {
	var id Identity
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return id, fmt.Errorf("pki: %w", err)
	}
	caCert, caKey, err := loadPair(filepath.Join(dir, ApplianceCAFile), filepath.Join(dir, ApplianceCAKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		caCert, caKey, err = newCA(now)
		if err == nil {
			err = writePair(dir, ApplianceCAFile, ApplianceCAKeyFile, caCert, caKey)
		}
		id.Generated = true
	}
	if err != nil {
		return id, err
	}
	cert, key, err := loadPair(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	if err != nil || id.Generated || !valid(cert, caCert, names, now) {
		cert, key, err = newServer(caCert, caKey, names, now)
		if err == nil {
			err = writePair(dir, ServerCertFile, ServerKeyFile, cert, key)
		}
		if err != nil {
			return id, err
		}
		id.Renewed = true
	}
	id.Cert = tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	id.CA = pemCert(caCert)
	return id, WriteCA(dir, id.CA)
}

// WriteCA writes the trust anchor to dir/ca.pem, mode 0644, replacing it
// atomically.
func WriteCA(dir string, ca []byte) error {
	return writeFile(filepath.Join(dir, CAFile), ca, 0o644)
}

// Load reads an operator's certificate chain and key (PEM). Errors name
// the file. The trust anchor is the last certificate of the chain: the
// certificate itself when it is alone (self-signed), else the top of the
// chain the operator gave, which agents and the CLI then trust.
func Load(certFile, keyFile string) (Identity, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: tls-cert: %w", err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: tls-key: %w", err)
	}
	var chain []*x509.Certificate
	for rest := cb; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return Identity{}, fmt.Errorf("pki: tls-cert %s: certificate %d: %w", certFile, len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return Identity{}, fmt.Errorf("pki: tls-cert %s: no PEM CERTIFICATE block", certFile)
	}
	if !bytes.Contains(kb, []byte("PRIVATE KEY-----")) {
		return Identity{}, fmt.Errorf("pki: tls-key %s: no PEM PRIVATE KEY block", keyFile)
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: tls-cert %s and tls-key %s: %w", certFile, keyFile, err)
	}
	return Identity{Cert: pair, CA: pemCert(chain[len(chain)-1])}, nil
}

// Covers reports whether c names every one of names: IP addresses as IP
// SANs, other names as DNS SANs.
func Covers(c *x509.Certificate, names []string) bool {
	for _, n := range names {
		if c.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// Missing returns the names c does not cover, for a warning.
func Missing(c *x509.Certificate, names []string) []string {
	var out []string
	for _, n := range names {
		if c.VerifyHostname(n) != nil {
			out = append(out, n)
		}
	}
	return out
}

// Pool returns a certificate pool of the PEM certificates in ca, or an
// error when it holds none. name is the file it came from, for the error.
func Pool(name string, ca []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("pki: %s: no PEM certificate", name)
	}
	return pool, nil
}

func valid(c, ca *x509.Certificate, names []string, now time.Time) bool {
	if c.CheckSignatureFrom(ca) != nil || now.Before(c.NotBefore) || now.Add(renewBefore).After(c.NotAfter) {
		return false
	}
	return Covers(c, names)
}

func newCA(now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"rackboot"}, CommonName: "rackboot appliance CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return create(tmpl, nil, key, key)
}

func newServer(ca *x509.Certificate, caKey crypto.Signer, names []string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"rackboot"}, CommonName: "rackboot appliance"},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(serverLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return create(tmpl, ca, key, caKey)
}

// create signs tmpl (self-signed when parent is nil) with a random serial.
func create(tmpl, parent *x509.Certificate, key, signer crypto.Signer) (*x509.Certificate, crypto.Signer, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: serial: %w", err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: signing %q: %w", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	return c, key, nil
}

// loadPair reads a certificate and its key written by writePair. A
// missing certificate or key is fs.ErrNotExist; anything else unreadable
// is an error naming the file, never a reason to generate over it.
func loadPair(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	cp, _ := pem.Decode(cb)
	if cp == nil || cp.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("pki: %s: no PEM certificate", certFile)
	}
	c, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", certFile, err)
	}
	kp, _ := pem.Decode(kb)
	if kp == nil || !strings.HasSuffix(kp.Type, "PRIVATE KEY") {
		return nil, nil, fmt.Errorf("pki: %s: no PEM private key", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", keyFile, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("pki: %s: not a signing key", keyFile)
	}
	if _, err := tls.X509KeyPair(cb, kb); err != nil {
		return nil, nil, fmt.Errorf("pki: %s and %s: %w", certFile, keyFile, err)
	}
	return c, signer, nil
}

// writePair writes the key first, 0600, then the certificate: a crash
// between the two leaves a certificate that does not match, which
// loadPair refuses, never a certificate without a key.
func writePair(dir, certName, keyName string, c *x509.Certificate, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeFile(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, certName), pemCert(c), 0o644)
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// writeFile replaces name atomically: a temporary file, synced, renamed.
func writeFile(name string, b []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// CABundle is the generated CA of dir as one PEM bundle, certificate then
// key, for appliances that share one CA (docs/DESIGN.md, "Several
// appliances"): dir's own when it has one, else a new one, which is not
// written (AdoptCA does that, with whichever bundle the appliances agreed
// on).
func CABundle(dir string, now time.Time) ([]byte, error) {
	c, key, err := loadPair(filepath.Join(dir, ApplianceCAFile), filepath.Join(dir, ApplianceCAKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		c, key, err = newCA(now)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return append(pemCert(c), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...), nil
}

// AdoptCA makes the CA of bundle (as CABundle makes it) dir's generated
// CA, replacing another one, and reports whether it changed anything.
// The next Ensure then signs a new server certificate under it.
func AdoptCA(dir string, bundle []byte) (bool, error) {
	cb, rest := pem.Decode(bundle)
	kb, _ := pem.Decode(rest)
	if cb == nil || cb.Type != "CERTIFICATE" || kb == nil || !strings.HasSuffix(kb.Type, "PRIVATE KEY") {
		return false, errors.New("pki: shared CA: want a PEM certificate and its key")
	}
	certPEM, keyPEM := pem.EncodeToMemory(cb), pem.EncodeToMemory(kb)
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return false, fmt.Errorf("pki: shared CA: %w", err)
	}
	if old, err := os.ReadFile(filepath.Join(dir, ApplianceCAFile)); err == nil && bytes.Equal(old, certPEM) {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("pki: %w", err)
	}
	if err := writeFile(filepath.Join(dir, ApplianceCAKeyFile), keyPEM, 0o600); err != nil {
		return false, err
	}
	return true, writeFile(filepath.Join(dir, ApplianceCAFile), certPEM, 0o644)
}
