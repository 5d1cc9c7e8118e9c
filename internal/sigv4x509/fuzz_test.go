package sigv4x509_test

import (
	"testing"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4x509"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-X509-ECDSA-SHA256 Credential=1/20261126/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host;x-amz-date;x-amz-x509, Signature=00ff")
	f.Add("AWS4-X509-RSA-SHA256 Credential=,,,")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := sigv4x509.ParseAuthorization(s)
		if err == nil && (len(a.Signature) == 0 || len(a.SignedHeaders) == 0) {
			t.Fatal("accepted without signature or signed headers")
		}
	})
}

// FuzzVerify mutates every attacker-controlled part of a signed request.
// Verify must never panic, and whatever it accepts must stay bound to its
// body: the same request with one more byte of body is refused.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, pkitest.P256, true)
	req := newRequest(f)
	if err := fx.signer.Sign(req, []byte(testBody), "us-east-1", testTime); err != nil {
		f.Fatal(err)
	}
	f.Add(req.Header.Get("Authorization"), req.Header.Get("X-Amz-Date"), req.Header.Get("X-Amz-X509"), req.Header.Get("X-Amz-X509-Chain"), req.URL.RawQuery, testBody)
	f.Fuzz(func(t *testing.T, authz, date, x509h, chain, query, body string) {
		r := newRequest(t)
		r.Header.Set("Authorization", authz)
		r.Header.Set("X-Amz-Date", date)
		r.Header.Set("X-Amz-X509", x509h)
		r.Header.Set("X-Amz-X509-Chain", chain)
		r.URL.RawQuery = query
		v, err := sigv4x509.Verify(r, []byte(body), sigv4x509.VerifyOptions{})
		if err != nil {
			return
		}
		if v.Authorization.Serial != v.Certificate.SerialNumber.String() {
			t.Fatal("accepted with a serial that is not the certificate's")
		}
		if _, err := sigv4x509.Verify(r, []byte(body+" "), sigv4x509.VerifyOptions{}); err == nil {
			t.Fatal("accepted the same signature over another body")
		}
	})
}
