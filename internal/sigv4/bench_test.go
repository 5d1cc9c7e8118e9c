package sigv4_test

import (
	"testing"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Figures are recorded in docs/benchmarks.md.

func BenchmarkSign(b *testing.B) {
	for _, c := range []struct{ name, kind string }{{"RSA-2048", pkitest.RSA2048}, {"ECDSA-P256", pkitest.P256}, {"ECDSA-P384", pkitest.P384}, {"ML-DSA-44", pkitest.MLDSA44}, {"ML-DSA-65", pkitest.MLDSA65}, {"ML-DSA-87", pkitest.MLDSA87}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, c.kind, true)
			body := []byte(testBody)
			for b.Loop() {
				req := newRequest(b)
				if err := f.signer.Sign(req, body, "us-east-1", testTime); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, c := range []struct{ name, kind string }{{"RSA-2048", pkitest.RSA2048}, {"ECDSA-P256", pkitest.P256}, {"ML-DSA-44", pkitest.MLDSA44}, {"ML-DSA-65", pkitest.MLDSA65}, {"ML-DSA-87", pkitest.MLDSA87}} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, c.kind, true)
			body := []byte(testBody)
			req := newRequest(b)
			if err := f.signer.Sign(req, body, "us-east-1", testTime); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := sigv4.VerifyX509(req, body, sigv4.X509VerifyOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHMAC signs and verifies an STS request with standard SigV4, as
// keyless dev's STS call and the emulator's STS do.
func BenchmarkHMAC(b *testing.B) {
	opts := sigv4.HMACVerifyOptions{Service: "sts", Secret: secretOf}
	b.Run("Sign", func(b *testing.B) {
		for b.Loop() {
			hmacRequest(b, stsBody, exampleTime)
		}
	})
	b.Run("Verify", func(b *testing.B) {
		req := hmacRequest(b, stsBody, exampleTime)
		for b.Loop() {
			if _, err := sigv4.VerifyHMAC(req, []byte(stsBody), opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
