package pki_test

import (
	"crypto/x509"
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
