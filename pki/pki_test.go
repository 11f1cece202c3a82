package pki

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func verify(t *testing.T, id Identity, name string, at time.Time) error {
	t.Helper()
	pool, err := Pool("ca", id.CA)
	if err != nil {
		t.Fatal(err)
	}
	_, err = id.Cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: at})
	return err
}

func TestEnsure(t *testing.T) {
	dir := t.TempDir()
	names := []string{"192.0.2.1", "198.51.100.1", "127.0.0.1", "localhost"}
	first, err := Ensure(dir, names, now)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Generated || !first.Renewed {
		t.Errorf("first start: Generated %v, Renewed %v; want both", first.Generated, first.Renewed)
	}
	for _, n := range names {
		if err := verify(t, first, n, now); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if err := verify(t, first, "192.0.2.99", now); err == nil {
		t.Error("an address not given verifies")
	}
	ca, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil || !bytes.Equal(ca, first.CA) {
		t.Errorf("ca.pem: %v, equal to the CA: %v", err, bytes.Equal(ca, first.CA))
	}
	for name, want := range map[string]os.FileMode{CAFile: 0o644, ApplianceCAKeyFile: 0o600, ServerKeyFile: 0o600} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v; want %v", name, err, fi.Mode().Perm(), want)
		}
	}

	t.Run("kept", func(t *testing.T) {
		again, err := Ensure(dir, names[:2], now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if again.Generated || again.Renewed || !bytes.Equal(again.Cert.Certificate[0], first.Cert.Certificate[0]) {
			t.Errorf("same names: Generated %v, Renewed %v, same certificate %v; want the certificate kept",
				again.Generated, again.Renewed, bytes.Equal(again.Cert.Certificate[0], first.Cert.Certificate[0]))
		}
	})
	t.Run("new address", func(t *testing.T) {
		moved := append([]string{"203.0.113.7"}, names...)
		id, err := Ensure(dir, moved, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if id.Generated || !id.Renewed || !bytes.Equal(id.CA, first.CA) {
			t.Errorf("Generated %v, Renewed %v, same CA %v; want a new server certificate under the same CA", id.Generated, id.Renewed, bytes.Equal(id.CA, first.CA))
		}
		if err := verify(t, id, "203.0.113.7", now); err != nil {
			t.Errorf("new address: %v", err)
		}
		if err := verify(t, id, "192.0.2.1", now); err != nil {
			t.Errorf("old address: %v", err)
		}
	})
	t.Run("near expiry", func(t *testing.T) {
		late := now.Add(serverLifetime - renewBefore + 2*time.Hour) // past the renewal point of "new address"
		id, err := Ensure(dir, names, late)
		if err != nil {
			t.Fatal(err)
		}
		if !id.Renewed || !bytes.Equal(id.CA, first.CA) {
			t.Errorf("Renewed %v, same CA %v; want a renewal under the same CA", id.Renewed, bytes.Equal(id.CA, first.CA))
		}
		if err := verify(t, id, "192.0.2.1", late.Add(renewBefore)); err != nil {
			t.Error(err)
		}
	})
	t.Run("damaged key", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, ServerKeyFile), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Ensure(dir, names, now)
		if err == nil || !strings.Contains(err.Error(), ServerKeyFile) {
			t.Errorf("got %v, want an error naming %s", err, ServerKeyFile)
		}
	})
}

func TestLoad(t *testing.T) {
	gen, err := Ensure(t.TempDir(), []string{"192.0.2.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	src := t.TempDir()
	if _, err := Ensure(src, []string{"192.0.2.1"}, now); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cert, key, ca := read(ServerCertFile), read(ServerKeyFile), read(ApplianceCAFile)
	good := write("chain.pem", cert+ca)
	goodKey := write("key.pem", key)

	id, err := Load(good, goodKey)
	if err != nil {
		t.Fatal(err)
	}
	if string(id.CA) != ca {
		t.Errorf("anchor is not the last certificate of the chain")
	}
	for _, tt := range []struct {
		name      string
		cert, key string
		wantInErr string
	}{
		{"missing cert", filepath.Join(dir, "none.pem"), goodKey, "none.pem"},
		{"missing key", good, filepath.Join(dir, "nokey.pem"), "nokey.pem"},
		{"not PEM", write("junk.pem", "junk"), goodKey, "junk.pem"},
		{"key not PEM", good, write("junkkey.pem", "junk"), "junkkey.pem"},
		{"key of another certificate", write("other.pem", string(pemCert(gen.Cert.Leaf))), goodKey, "other.pem"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("got %v, want an error naming %s", err, tt.wantInErr)
			}
		})
	}
}

func TestMissing(t *testing.T) {
	id, err := Ensure(t.TempDir(), []string{"192.0.2.1", "rackboot.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	got := Missing(id.Cert.Leaf, []string{"192.0.2.1", "rackboot.example", "192.0.2.2", "other.example"})
	if strings.Join(got, " ") != "192.0.2.2 other.example" {
		t.Errorf("Missing = %q", got)
	}
}

func TestAdoptCA(t *testing.T) {
	now := time.Now()
	a, b := t.TempDir(), t.TempDir()
	idA, err := Ensure(a, []string{"192.0.2.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := CABundle(a, now)
	if err != nil {
		t.Fatal(err)
	}
	// b had its own CA: adopting a's replaces it, and the next Ensure
	// signs b's server certificate under a's CA.
	if _, err := Ensure(b, []string{"192.0.2.2"}, now); err != nil {
		t.Fatal(err)
	}
	changed, err := AdoptCA(b, bundle)
	if err != nil || !changed {
		t.Fatalf("AdoptCA = %v, %v; want changed", changed, err)
	}
	idB, err := Ensure(b, []string{"192.0.2.2"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(idA.CA, idB.CA) || !idB.Renewed || idB.Generated {
		t.Fatalf("after AdoptCA: same CA %v, renewed %v, generated %v; want true, true, false", bytes.Equal(idA.CA, idB.CA), idB.Renewed, idB.Generated)
	}
	pool, err := Pool("ca", idA.CA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idB.Cert.Leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Fatalf("b's certificate under a's CA: %v", err)
	}
	if changed, err := AdoptCA(b, bundle); err != nil || changed {
		t.Fatalf("AdoptCA again = %v, %v; want unchanged", changed, err)
	}
	if _, err := AdoptCA(b, []byte("junk")); err == nil {
		t.Fatal("AdoptCA took junk")
	}
	// A directory without a CA gets a new one, not written.
	c := t.TempDir()
	if nb, err := CABundle(c, now); err != nil || len(nb) == 0 {
		t.Fatalf("CABundle of an empty dir = %d bytes, %v", len(nb), err)
	}
	if _, err := os.Stat(filepath.Join(c, ApplianceCAFile)); err == nil {
		t.Fatal("CABundle wrote a CA")
	}
}
