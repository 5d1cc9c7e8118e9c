package pki_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func TestParseCSR(t *testing.T) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "gitlab-runner"}}, pkitest.Key(t, pkitest.P256))
	if err != nil {
		t.Fatal(err)
	}
	good := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if csr, err := pki.ParseCSR(good); err != nil || csr.Subject.CommonName != "gitlab-runner" {
		t.Fatalf("ParseCSR: %v", err)
	}
	tampered := append([]byte(nil), der...)
	tampered[len(tampered)-3] ^= 0xff
	for name, tt := range map[string]struct {
		data []byte
		want string
	}{
		"not PEM":       {[]byte("csr"), "no PEM block"},
		"a certificate": {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), `PEM block is "CERTIFICATE"`},
		"garbage DER":   {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}), "not a certificate request"},
		"bad signature": {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), "signature does not verify"},
	} {
		_, err := pki.ParseCSR(tt.data)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", name, err, tt.want)
		}
		if name != "bad signature" && !errors.Is(err, pki.ErrNotCSR) {
			t.Errorf("%s: %v is not ErrNotCSR", name, err)
		}
	}
}
