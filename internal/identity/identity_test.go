package identity_test

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

type files struct {
	dir                                  string
	leaf, bundle, key, inter, p12, other string
	leafCert, interCert                  *x509.Certificate
}

func setup(t *testing.T) files {
	t.Helper()
	dir := t.TempDir()
	root := pkitest.NewRoot(t, "id-root")
	inter := root.Intermediate(t, "id-int")
	key := pkitest.Key(t, pkitest.P256)
	leaf := inter.Leaf(t, pkitest.LeafOptions{Key: key})
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, _ := pki.EncodePrivateKey(pkitest.Key(t, pkitest.P384))
	p12, err := pkcs12.Modern2023.Encode(key, leaf, []*x509.Certificate{inter.Cert}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	return files{
		dir:       dir,
		leaf:      pkitest.WriteFile(t, dir, "leaf.pem", pki.EncodeCertificates(leaf)),
		bundle:    pkitest.WriteFile(t, dir, "bundle.pem", pki.EncodeCertificates(leaf, inter.Cert)),
		key:       pkitest.WriteFile(t, dir, "key.pem", keyPEM),
		inter:     pkitest.WriteFile(t, dir, "inter.pem", pki.EncodeCertificates(inter.Cert)),
		p12:       pkitest.WriteFile(t, dir, "leaf.p12", p12),
		other:     pkitest.WriteFile(t, dir, "other.pem", otherPEM),
		leafCert:  leaf,
		interCert: inter.Cert,
	}
}

func TestLoad(t *testing.T) {
	f := setup(t)
	now := time.Now()
	var asked []string
	pw := func(path string) ([]byte, error) { asked = append(asked, path); return []byte("pw"), nil }

	id, err := identity.Load(identity.Files{Certificate: f.leaf, PrivateKey: f.key}, pw, now)
	if err != nil || !id.Certificate.Equal(f.leafCert) || len(id.Intermediates) != 0 {
		t.Fatalf("leaf+key: %v", err)
	}
	id, err = identity.Load(identity.Files{Certificate: f.bundle, PrivateKey: f.key}, pw, now)
	if err != nil || len(id.Intermediates) != 1 || !id.Intermediates[0].Equal(f.interCert) {
		t.Fatalf("bundle: intermediates after the leaf are the chain: %v", err)
	}
	id, err = identity.Load(identity.Files{Certificate: f.bundle, PrivateKey: f.key, Intermediates: f.leaf}, pw, now)
	if err != nil || len(id.Intermediates) != 1 || !id.Intermediates[0].Equal(f.leafCert) {
		t.Fatalf("--intermediates replaces the bundle's chain: %v", err)
	}
	if len(asked) != 0 {
		t.Fatalf("asked for a password for unencrypted files: %v", asked)
	}
	id, err = identity.Load(identity.Files{Certificate: f.p12}, pw, now)
	if err != nil || !id.Certificate.Equal(f.leafCert) || len(id.Intermediates) != 1 {
		t.Fatalf("p12: %v", err)
	}
	if len(asked) != 1 || asked[0] != f.p12 {
		t.Fatalf("password asked for %v, want the p12 path", asked)
	}
}

func TestLoadRefusals(t *testing.T) {
	f := setup(t)
	now := time.Now()
	empty := pkitest.WriteFile(t, f.dir, "empty.pem", nil)
	big := pkitest.WriteFile(t, f.dir, "big.pem", []byte(strings.Repeat("x", 2<<20)))
	unreadable := pkitest.WriteFile(t, f.dir, "unreadable.pem", []byte("x"))
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files identity.Files
		role  string
		want  error
		msg   string
	}{
		{"mismatched-key", identity.Files{Certificate: f.leaf, PrivateKey: f.other}, identity.RolePrivateKey, identity.ErrKeyMismatch, "ECDSA P-256"},
		{"no-key", identity.Files{Certificate: f.leaf}, identity.RoleCertificate, identity.ErrNoPrivateKey, ""},
		{"key-with-p12", identity.Files{Certificate: f.p12, PrivateKey: f.key}, identity.RolePrivateKey, identity.ErrKeyWithPKCS12, ""},
		{"chain-with-p12", identity.Files{Certificate: f.p12, Intermediates: f.inter}, identity.RoleIntermediates, identity.ErrChainWithPKCS12, ""},
		{"swapped", identity.Files{Certificate: f.key, PrivateKey: f.leaf}, identity.RoleCertificate, pki.ErrNotCertificate, "swapped"},
		{"missing-cert", identity.Files{Certificate: filepath.Join(f.dir, "nope.pem"), PrivateKey: f.key}, identity.RoleCertificate, nil, "no such file"},
		{"missing-key", identity.Files{Certificate: f.leaf, PrivateKey: filepath.Join(f.dir, "nope.pem")}, identity.RolePrivateKey, nil, "no such file"},
		{"missing-chain", identity.Files{Certificate: f.leaf, PrivateKey: f.key, Intermediates: filepath.Join(f.dir, "nope.pem")}, identity.RoleIntermediates, nil, "no such file"},
		{"chain-is-key", identity.Files{Certificate: f.leaf, PrivateKey: f.key, Intermediates: f.key}, identity.RoleIntermediates, pki.ErrNotCertificate, ""},
		{"directory", identity.Files{Certificate: f.dir, PrivateKey: f.key}, identity.RoleCertificate, nil, "directory"},
		{"empty", identity.Files{Certificate: empty, PrivateKey: f.key}, identity.RoleCertificate, nil, "empty"},
		{"huge", identity.Files{Certificate: big, PrivateKey: f.key}, identity.RoleCertificate, nil, "kilobytes"},
		{"endless-device", identity.Files{Certificate: "/dev/zero", PrivateKey: f.key}, identity.RoleCertificate, nil, "kilobytes"},
		{"missing-key-caught-by-check", identity.Files{Certificate: f.p12, PrivateKey: filepath.Join(f.dir, "nope.pem")}, identity.RolePrivateKey, identity.ErrKeyWithPKCS12, ""},
		{"p12-no-password", identity.Files{Certificate: f.p12}, identity.RoleCertificate, pki.ErrPasswordRequired, ""},
	}
	if os.Geteuid() != 0 {
		tests = append(tests, struct {
			name  string
			files identity.Files
			role  string
			want  error
			msg   string
		}{"unreadable", identity.Files{Certificate: unreadable, PrivateKey: f.key}, identity.RoleCertificate, nil, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := identity.Load(tt.files, nil, now)
			var fe *identity.FileError
			if !errors.As(err, &fe) || fe.Role != tt.role {
				t.Fatalf("got %v, want a FileError for the %s", err, tt.role)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("%q does not mention %q", err, tt.msg)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		_, err := identity.Load(identity.Files{Certificate: f.leaf, PrivateKey: f.key}, nil, f.leafCert.NotAfter.Add(time.Second))
		var fe *identity.FileError
		if !errors.Is(err, pki.ErrExpired) || !errors.As(err, &fe) || fe.Path != f.leaf {
			t.Fatalf("got %v", err)
		}
	})
}

func TestFingerprint(t *testing.T) {
	f := setup(t)
	fingerprint := func(p string) (string, error) {
		data, err := identity.ReadFile(identity.RoleCertificate, p)
		if err != nil {
			return "", err
		}
		return identity.Fingerprint(p, data)
	}
	for _, p := range []string{f.leaf, f.bundle} {
		got, err := fingerprint(p)
		if err != nil || got != pki.Fingerprint(f.leafCert) {
			t.Fatalf("%s: %s, %v", p, got, err)
		}
	}
	der := pkitest.WriteFile(t, f.dir, "leaf.der", f.leafCert.Raw)
	if got, err := fingerprint(der); err != nil || got != pki.Fingerprint(f.leafCert) {
		t.Fatalf("DER: %s, %v", got, err)
	}
	got, err := fingerprint(f.p12)
	if err != nil || len(got) != 64 {
		t.Fatalf("p12: %s, %v", got, err)
	}
	if _, err := fingerprint(f.key); !errors.Is(err, pki.ErrNotCertificate) {
		t.Fatalf("key file: %v", err)
	}
}

func TestCheckAndPipes(t *testing.T) {
	f := setup(t)
	if err := identity.Check(identity.Files{Certificate: f.leaf, PrivateKey: f.key}); err != nil {
		t.Fatal(err)
	}
	err := identity.Check(identity.Files{Certificate: f.leaf, PrivateKey: filepath.Join(f.dir, "nope.key")})
	var fe *identity.FileError
	if !errors.As(err, &fe) || fe.Role != identity.RolePrivateKey {
		t.Fatalf("missing key file: %v", err)
	}
	// A pipe can be read once; with CertificateData the file is not read
	// again.
	data, err := identity.ReadFile(identity.RoleCertificate, f.leaf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.Load(identity.Files{Certificate: "/nonexistent/pipe", CertificateData: data, PrivateKey: f.key}, nil, time.Now()); err != nil {
		t.Fatalf("CertificateData not used: %v", err)
	}
}
