package pkitest

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"time"
)

// CAOptions shape a CA certificate for tests of the rules on CA
// certificates. The zero value (with a Name) gives what NewRoot gives: a
// self-signed P-256 CA with keyUsage keyCertSign and cRLSign, signed
// with ECDSA-SHA256, valid from an hour ago for a day.
type CAOptions struct {
	Name string
	// Key defaults to a P-256 key of its own (per Name).
	Key crypto.Signer
	// Parent signs the certificate; nil makes it self-signed.
	Parent *CA
	// KeyUsage defaults to keyCertSign|cRLSign; NoKeyUsage leaves the
	// extension out.
	KeyUsage   x509.KeyUsage
	NoKeyUsage bool
	// SignatureAlgorithm overrides the signer's default (SHA1WithRSA,
	// ECDSAWithSHA1: what Roles Anywhere refuses).
	SignatureAlgorithm x509.SignatureAlgorithm
	// NotCA leaves basicConstraints CA=false.
	NotCA bool
}

// NewCA makes a CA certificate as o says.
func NewCA(t Fataler, o CAOptions) *CA {
	helper(t)
	if o.Key == nil {
		o.Key = Key(t, P256+"#ca-"+o.Name)
	}
	if o.KeyUsage == 0 && !o.NoKeyUsage {
		o.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if o.NoKeyUsage {
		o.KeyUsage = 0
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: o.Name, Organization: []string{"keyless tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              o.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  !o.NotCA,
		SignatureAlgorithm:    o.SignatureAlgorithm,
	}
	issuer, signer := tmpl, o.Key
	if o.Parent != nil {
		issuer, signer = o.Parent.Cert, o.Parent.Key
		if until := time.Until(o.Parent.Cert.NotAfter); until < 24*time.Hour {
			tmpl.NotAfter = o.Parent.Cert.NotAfter
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, o.Key.Public(), signer)
	if err != nil {
		t.Fatalf("pkitest: creating CA %s: %v", o.Name, err)
	}
	return &CA{Cert: parse(t, der), Key: o.Key}
}
