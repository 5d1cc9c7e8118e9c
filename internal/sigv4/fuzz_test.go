package sigv4_test

import (
	"testing"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// FuzzParseAuthorization: whatever the one parser accepts, in either
// form, has a signature and signed headers, and formats back to a header
// that parses to the same thing.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-X509-ECDSA-SHA256 Credential=1/20261126/us-east-1/rolesanywhere/aws4_request, SignedHeaders=host;x-amz-date;x-amz-x509, Signature=00ff")
	f.Add("AWS4-X509-RSA-SHA256 Credential=,,,")
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := sigv4.ParseAuthorization(s)
		if err != nil {
			return
		}
		if len(a.Signature) == 0 || len(a.SignedHeaders) == 0 {
			t.Fatal("accepted without signature or signed headers")
		}
		again, err := sigv4.ParseAuthorization(a.String())
		if err != nil || again.String() != a.String() {
			t.Fatalf("%q formats as %q, which parses to %v, %v", s, a.String(), again, err)
		}
	})
}

// FuzzVerifyHMAC mutates every attacker-controlled part of a signed
// standard request. VerifyHMAC must never panic, and whatever it accepts
// stays bound to its body.
func FuzzVerifyHMAC(f *testing.F) {
	req := hmacRequest(f, stsBody, exampleTime)
	f.Add(req.Header.Get("Authorization"), req.Header.Get(sigv4.HeaderDate), req.Header.Get(sigv4.HeaderSecurityToken), req.URL.Path, req.URL.RawQuery, stsBody)
	opts := sigv4.HMACVerifyOptions{Service: "sts", Secret: secretOf}
	f.Fuzz(func(t *testing.T, authz, date, token, path, query, body string) {
		r := hmacRequest(t, "", exampleTime)
		r.Header.Set("Authorization", authz)
		r.Header.Set(sigv4.HeaderDate, date)
		r.Header.Set(sigv4.HeaderSecurityToken, token)
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = path, "", query
		if _, err := sigv4.VerifyHMAC(r, []byte(body), opts); err != nil {
			return
		}
		if _, err := sigv4.VerifyHMAC(r, []byte(body+" "), opts); err == nil {
			t.Fatal("accepted the same signature over another body")
		}
	})
}

// FuzzVerifyX509 mutates every attacker-controlled part of a signed request.
// Verify must never panic, and whatever it accepts must stay bound to its
// body: the same request with one more byte of body is refused.
func FuzzVerifyX509(f *testing.F) {
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
		v, err := sigv4.VerifyX509(r, []byte(body), sigv4.X509VerifyOptions{})
		if err != nil {
			return
		}
		if v.Authorization.Credential != v.Certificate.SerialNumber.String() {
			t.Fatal("accepted with a serial that is not the certificate's")
		}
		if _, err := sigv4.VerifyX509(r, []byte(body+" "), sigv4.X509VerifyOptions{}); err == nil {
			t.Fatal("accepted the same signature over another body")
		}
	})
}
