// Package enroll is the runner's side of getting a first certificate from
// a step-compatible CA (keyless ca or step-ca): trust the CA by its root
// fingerprint (Bootstrap), find that trust again (LoadTrust), and Enroll:
// a key made here that never leaves the machine, a CSR, a one-time token
// (given, or made from the provisioner password), the CA's certificate
// checked against the root and the key, and the pair written as a unit.
//
// It is a use case: keyless bootstrap and keyless certificate, keyless
// dev and the agent's first start call it. Errors are typed (*FileExists,
// *InputError, caclient's *APIError with its reason); the CLI adds hints.
package enroll

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki"
)

// Key types.
const (
	KeyEC  = "EC"  // ECDSA P-256
	KeyRSA = "RSA" // RSA of Request.KeySize bits
	// KeyMLDSA is ML-DSA-65; KeyMLDSA44, KeyMLDSA65 and KeyMLDSA87 name
	// a parameter set (FIPS 204), which Roles Anywhere accepts since 2026.
	KeyMLDSA   = "ML-DSA"
	KeyMLDSA44 = "ML-DSA-44"
	KeyMLDSA65 = "ML-DSA-65"
	KeyMLDSA87 = "ML-DSA-87"
)

// Request is what to enroll.
type Request struct {
	// Subject is the certificate's common name; SANs default to it.
	Subject string
	SANs    []string
	// CertPath gets the certificate (and, unless ChainPath is set, the
	// intermediates after it); KeyPath gets the key, 0600.
	CertPath, KeyPath, ChainPath string
	// Force replaces existing files; without it an existing file is a
	// *FileExists error and nothing is written.
	Force bool
	// KeyType is KeyEC (default) or KeyRSA, with KeySize 2048 (default),
	// 3072 or 4096: what Roles Anywhere accepts.
	KeyType string
	KeySize int
	// Token is a one-time token made on the CA host. Without it, one is
	// made from ProvisionerPassword, which decrypts the key of the JWK
	// provisioner named Provisioner (empty: the CA's only one).
	Token               string
	Provisioner         string
	ProvisionerPassword []byte
	// NotBefore and NotAfter bound the lifetime: RFC 3339 times or
	// durations ("168h"); empty for the CA's defaults.
	NotBefore, NotAfter string
}

// FileExists means a file Enroll would write exists and Force is off.
type FileExists struct{ Path string }

func (e *FileExists) Error() string { return e.Path + " exists" }

// InputError is a request Enroll refuses before calling the CA. Field
// names the request's field in the CLI's terms ("kty", "size", "token").
type InputError struct {
	Field string
	Err   error
}

func (e *InputError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Enroller enrolls with one CA.
type Enroller struct {
	Client *caclient.Client
	// Rand makes keys; nil means crypto/rand.
	Rand io.Reader
	// Logger gets one line per enrollment; nil discards.
	Logger *slog.Logger
}

// Enroll gets a certificate for r and writes it with its new key. The CA's
// answer is checked against its root and the key before anything is
// written, and the pair is replaced as a unit: a crash leaves the old
// pair or the new one.
func (e *Enroller) Enroll(ctx context.Context, r Request) (*caclient.Certificates, error) {
	if (r.Token == "") == (len(r.ProvisionerPassword) == 0) {
		return nil, &InputError{Field: "token", Err: errors.New("give a one-time token or the provisioner's password, not both or neither")}
	}
	if !r.Force {
		for _, p := range []string{r.CertPath, r.KeyPath, r.ChainPath} {
			if _, err := os.Lstat(p); p != "" && err == nil {
				return nil, &FileExists{Path: p}
			}
		}
	}
	// The token is spent once the CA answers: find out first whether the
	// pair can be written at all.
	if err := identity.CheckLock(r.CertPath); err != nil {
		return nil, err
	}
	rnd := e.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	key, err := newKey(rnd, r.KeyType, r.KeySize)
	if err != nil {
		return nil, err
	}
	sans := r.SANs
	if len(sans) == 0 {
		sans = []string{r.Subject}
	}
	csr, err := makeCSR(rnd, key, r.Subject, sans)
	if err != nil {
		return nil, err
	}
	token := r.Token
	if token == "" {
		if token, err = e.Client.SignToken(ctx, r.Provisioner, r.ProvisionerPassword, r.Subject, sans); err != nil {
			return nil, err
		}
	}
	certs, err := e.Client.Sign(ctx, caclient.SignRequest{CSR: csr, Token: token, NotBefore: r.NotBefore, NotAfter: r.NotAfter, PublicKey: key.Public()})
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pki.EncodeCertificates(append([]*x509.Certificate{certs.Leaf}, certs.Intermediates...)...)
	if r.ChainPath != "" {
		certPEM = pki.EncodeCertificates(certs.Leaf)
		if err := atomicfile.WriteFile(r.ChainPath, pki.EncodeCertificates(certs.Intermediates...), 0o600); err != nil {
			return nil, err
		}
	}
	if err := identity.WritePair(r.CertPath, certPEM, r.KeyPath, keyPEM); err != nil {
		return nil, err
	}
	logger := e.Logger
	logger = logline.Or(logger)
	logger.Info("enrolled", "subject", r.Subject, "serial", certs.Leaf.SerialNumber.String(), "certificate", r.CertPath)
	return certs, nil
}

func newKey(rnd io.Reader, kty string, size int) (crypto.Signer, error) {
	switch kty {
	case KeyEC, "":
		return ecdsa.GenerateKey(elliptic.P256(), rnd)
	case KeyRSA:
		if size == 0 {
			size = 2048
		}
		if size != 2048 && size != 3072 && size != 4096 {
			return nil, &InputError{Field: "size", Err: fmt.Errorf("want 2048, 3072 or 4096 (what Roles Anywhere takes), not %d", size)}
		}
		return rsa.GenerateKey(rnd, size)
	case KeyMLDSA:
		return mldsa.GenerateKey(mldsa.ML65, rnd)
	}
	if p, ok := mldsa.ByName(kty); ok && strings.HasPrefix(strings.ToUpper(kty), "ML-DSA-") {
		return mldsa.GenerateKey(p, rnd)
	}
	return nil, &InputError{Field: "kty", Err: fmt.Errorf("want EC, RSA or ML-DSA-44/65/87, not %q", kty)}
}

// makeCSR makes a PEM CSR for subject, with the SANs sorted as the CA
// sorts them (pki.SortNames).
func makeCSR(rnd io.Reader, key crypto.Signer, subject string, sans []string) ([]byte, error) {
	s := pki.SortNames(sans)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: subject},
		DNSNames: s.DNSNames, EmailAddresses: s.EmailAddresses, IPAddresses: s.IPAddresses, URIs: s.URIs}
	var der []byte
	var err error
	if k, ok := key.(*mldsa.PrivateKey); ok {
		der, err = mldsa.CreateCertificateRequest(tmpl, k)
	} else {
		der, err = x509.CreateCertificateRequest(rnd, tmpl, key)
	}
	if err != nil {
		return nil, fmt.Errorf("making the certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
