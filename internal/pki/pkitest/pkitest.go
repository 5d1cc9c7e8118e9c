// Package pkitest makes throwaway CAs, keys and certificates for tests, so
// no test depends on a key committed to the repository. Keys are generated
// once per test process and kind, because RSA generation is slow; every
// certificate is fresh. Only tests may import it.
package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki"
)

// Fataler is what the package needs of a test: *testing.T, *testing.B and
// testscript's *TestScript all have it.
type Fataler interface {
	Fatalf(format string, args ...any)
}

func helper(t Fataler) {
	if h, ok := t.(interface{ Helper() }); ok {
		h.Helper()
	}
}

// Key kinds accepted by Key.
const (
	RSA2048 = "rsa2048"
	RSA3072 = "rsa3072"
	RSA4096 = "rsa4096"
	RSA1024 = "rsa1024"
	P256    = "p256"
	P384    = "p384"
	P521    = "p521"
	// ML-DSA keys (FIPS 204), which Roles Anywhere accepts since 2026.
	MLDSA44 = "mldsa44"
	MLDSA65 = "mldsa65"
	MLDSA87 = "mldsa87"
)

var (
	keysMu sync.Mutex
	keys   = map[string]crypto.Signer{}
)

// Key returns a private key of the given kind, generated once per process
// and kind (pass a distinct suffix such as "p256#2" for a second key of
// the same kind).
func Key(t Fataler, kind string) crypto.Signer {
	helper(t)
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[kind]; ok {
		return k
	}
	base := kind
	for i := 0; i < len(kind); i++ {
		if kind[i] == '#' {
			base = kind[:i]
		}
	}
	var (
		k   crypto.Signer
		err error
	)
	switch base {
	case RSA1024:
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case RSA2048:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	case P256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case P384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case P521:
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case MLDSA44:
		k, err = mldsa.GenerateKey(mldsa.ML44, rand.Reader)
	case MLDSA65:
		k, err = mldsa.GenerateKey(mldsa.ML65, rand.Reader)
	case MLDSA87:
		k, err = mldsa.GenerateKey(mldsa.ML87, rand.Reader)
	default:
		t.Fatalf("pkitest: unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatalf("pkitest: generating %s key: %v", kind, err)
	}
	keys[kind] = k
	return k
}

// CA is a certificate authority for tests.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewRoot returns a self-signed root CA with a P-256 key, valid from an
// hour ago for a day.
func NewRoot(t Fataler, name string) *CA {
	helper(t)
	return NewRootWithKey(t, name, Key(t, P256+"#root-"+name))
}

// NewRootWithKey returns a self-signed root CA with the given key, valid
// from an hour ago for a day.
func NewRootWithKey(t Fataler, name string, key crypto.Signer) *CA {
	helper(t)
	return newCA(t, name, key, nil, 24*time.Hour)
}

// NewLongLivedRoot returns a root CA valid for ten years, for tests that
// move a fake clock days ahead.
func NewLongLivedRoot(t Fataler, name string) *CA {
	helper(t)
	return newCA(t, name, Key(t, P256+"#root-"+name), nil, 10*365*24*time.Hour)
}

// Intermediate returns a CA signed by ca, valid as long as ca.
func (ca *CA) Intermediate(t Fataler, name string) *CA {
	helper(t)
	return newCA(t, name, Key(t, P256+"#int-"+name), ca, time.Until(ca.Cert.NotAfter))
}

// newCA makes a CA certificate for key, signed by parent (self-signed
// when nil), valid from an hour ago until lifetime from now.
func newCA(t Fataler, name string, key crypto.Signer, parent *CA, lifetime time.Duration) *CA {
	helper(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"keyless tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        parent != nil,
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := mldsa.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatalf("pkitest: creating CA %s: %v", name, err)
	}
	return &CA{Cert: parse(t, der), Key: key}
}

// LeafOptions shape a leaf certificate. The zero value gives a valid
// Roles Anywhere client certificate for CN "gitlab-runner" with a P-256 key.
type LeafOptions struct {
	CommonName string
	Key        crypto.Signer
	NotBefore  time.Time
	NotAfter   time.Time
	Serial     *big.Int
	IsCA       bool
	// KeyUsage defaults to digitalSignature; set NoKeyUsage to leave the
	// extension out.
	KeyUsage   x509.KeyUsage
	NoKeyUsage bool
	// SignatureAlgorithm overrides the CA's default signature algorithm.
	SignatureAlgorithm x509.SignatureAlgorithm
	// DNSNames default to the common name; URIs to none.
	DNSNames []string
	URIs     []*url.URL
	// ExtraExtensions are added as they are; a subjectAltName here
	// replaces the one DNSNames and URIs would make.
	ExtraExtensions []pkix.Extension
}

// Leaf issues an end-entity certificate from ca.
func (ca *CA) Leaf(t Fataler, o LeafOptions) *x509.Certificate {
	helper(t)
	if o.CommonName == "" {
		o.CommonName = "gitlab-runner"
	}
	if o.Key == nil {
		o.Key = Key(t, P256)
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Minute)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if o.Serial == nil {
		o.Serial = serial(t)
	}
	if o.DNSNames == nil {
		o.DNSNames = []string{o.CommonName}
	}
	if o.KeyUsage == 0 && !o.NoKeyUsage {
		o.KeyUsage = x509.KeyUsageDigitalSignature
	}
	tmpl := &x509.Certificate{
		SerialNumber:          o.Serial,
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"keyless tests"}},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              o.KeyUsage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  o.IsCA,
		DNSNames:              o.DNSNames,
		URIs:                  o.URIs,
		ExtraExtensions:       o.ExtraExtensions,
		SignatureAlgorithm:    o.SignatureAlgorithm,
	}
	der, err := mldsa.CreateCertificate(rand.Reader, tmpl, ca.Cert, o.Key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("pkitest: creating leaf: %v", err)
	}
	return parse(t, der)
}

// CRL returns a DER certificate revocation list signed by ca that revokes
// the given serials.
func (ca *CA) CRL(t Fataler, serials ...*big.Int) []byte {
	helper(t)
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(time.Now().UnixNano()),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(24 * time.Hour),
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Minute)})
	}
	var der []byte
	var err error
	if k, ok := ca.Key.(*mldsa.PrivateKey); ok {
		der, err = mldsa.CreateRevocationList(rand.Reader, tmpl, ca.Cert, k)
	} else {
		der, err = x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	}
	if err != nil {
		t.Fatalf("pkitest: creating CRL: %v", err)
	}
	return der
}

// WriteIdentity makes a P-256 key and a leaf for it from ca, and writes
// them as a runner keeps them: dir/runner.crt (the leaf, then ca's
// certificate) and dir/runner.key (PKCS#8 PEM), 0600. It returns the
// two paths.
func (ca *CA) WriteIdentity(t Fataler, dir string) (cert, key string) {
	helper(t)
	k := Key(t, P256)
	keyPEM, err := pki.EncodePrivateKey(k)
	if err != nil {
		t.Fatalf("pkitest: %v", err)
	}
	cert = WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(ca.Leaf(t, LeafOptions{Key: k}), ca.Cert))
	return cert, WriteFile(t, dir, "runner.key", keyPEM)
}

// WriteFile writes data to dir/name with mode 0600 and returns the path.
func WriteFile(t Fataler, dir, name string, data []byte) string {
	helper(t)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatalf("pkitest: %v", err)
	}
	return p
}

func serial(t Fataler) *big.Int {
	helper(t)
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("pkitest: serial: %v", err)
	}
	return n
}

func parse(t Fataler, der []byte) *x509.Certificate {
	helper(t)
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("pkitest: parsing generated certificate: %v", err)
	}
	return c
}
