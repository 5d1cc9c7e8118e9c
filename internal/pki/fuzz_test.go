package pki_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"slices"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// The parsers read files users point keyless at; whatever is in them, they
// must return an error or a key, never panic or hang.

func FuzzParsePrivateKey(f *testing.F) {
	key := pkitest.Key(f, pkitest.P256)
	p8, _ := x509.MarshalPKCS8PrivateKey(key)
	f.Add(pemBlock("PRIVATE KEY", p8))
	f.Add(p8)
	enc := pbes2PBKDF2(f, 2048)
	f.Add(pemBlock("ENCRYPTED PRIVATE KEY", enc))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := pki.ParsePrivateKey(data, password("pw"))
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

func FuzzParseCertificates(f *testing.F) {
	ca := pkitest.NewRoot(f, "fuzz")
	f.Add(pki.EncodeCertificates(ca.Cert))
	f.Add(ca.Cert.Raw)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := pki.ParseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no certificates and no error")
		}
	})
}

func FuzzParsePKCS12(f *testing.F) {
	ca := pkitest.NewRoot(f, "fuzz-p12")
	key := pkitest.Key(f, pkitest.P256)
	leaf := ca.Leaf(f, pkitest.LeafOptions{Key: key})
	for _, enc := range []*pkcs12.Encoder{pkcs12.Modern2023, pkcs12.LegacyRC2, pkcs12.Passwordless} {
		pw := "pw"
		if enc == pkcs12.Passwordless {
			pw = ""
		}
		if data, err := enc.Encode(key, leaf, nil, pw); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := pki.ParsePKCS12(data, password("pw"))
		if err == nil && (id.Key == nil || id.Certificate == nil) {
			t.Fatal("incomplete identity without error")
		}
	})
}

// FuzzParseCSR: the CA parses CSRs straight from the network. Whatever it
// is given, ParseCSR returns a request whose self-signature verifies and
// whose DER is exactly the one PEM block's (so re-encoding round-trips),
// or refuses with ErrNotCSR, or with a signature error for a request that
// does parse but is not signed by its own key. Nothing else.
func FuzzParseCSR(f *testing.F) {
	key := pkitest.Key(f, pkitest.P256)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "gitlab-runner"}, DNSNames: []string{"gitlab-runner"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pemBlock("CERTIFICATE REQUEST", der))
	f.Add(pemBlock("NEW CERTIFICATE REQUEST", der))
	f.Add(der)
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := pki.ParseCSR(data)
		block, _ := pem.Decode(data)
		if err != nil {
			if csr != nil {
				t.Fatal("a request returned with an error")
			}
			if errors.Is(err, pki.ErrNotCSR) {
				return
			}
			// Not ErrNotCSR: only a well-formed request whose signature
			// does not verify may be refused another way.
			if block == nil {
				t.Fatalf("no PEM block, but not ErrNotCSR: %v", err)
			}
			parsed, perr := x509.ParseCertificateRequest(block.Bytes)
			if perr != nil || parsed.CheckSignature() == nil {
				t.Fatalf("refused a request that parses (%v) and verifies with %v", perr, err)
			}
			return
		}
		if csr == nil || csr.PublicKey == nil {
			t.Fatal("accepted without a public key")
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a request whose signature does not verify: %v", err)
		}
		if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") || !bytes.Equal(block.Bytes, csr.Raw) {
			t.Fatal("the request is not the first PEM block's DER")
		}
		again, err := pki.ParseCSR(pemBlock("CERTIFICATE REQUEST", csr.Raw))
		if err != nil || !bytes.Equal(again.Raw, csr.Raw) || again.Subject.String() != csr.Subject.String() ||
			!slices.Equal(again.DNSNames, csr.DNSNames) || pki.PublicKeyFingerprint(again.PublicKey) != pki.PublicKeyFingerprint(csr.PublicKey) {
			t.Fatalf("the re-encoded request does not parse the same: %v", err)
		}
		// What the CA does next with the key must not panic either.
		_ = pki.CheckPublicKey(csr.PublicKey)
	})
}
