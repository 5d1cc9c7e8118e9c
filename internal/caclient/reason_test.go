package caclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/testkit"
)

func csrFor(t *testing.T, cn string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// wantReason checks that err is the CA's refusal with reason r, sent by
// keyless's CA (not inferred from its message).
func wantReason(t *testing.T, err error, r caproto.Reason) *caclient.APIError {
	t.Helper()
	var ae *caclient.APIError
	if !errors.As(err, &ae) || ae.Reason != r || ae.Inferred {
		t.Fatalf("got %v (%+v), want a refusal with reason %s from the CA", err, ae, r)
	}
	return ae
}

// TestKeylessCARefusalReasons: keyless's CA sends a reason code with each
// refusal a client acts on, and the client exposes it.
func TestKeylessCARefusalReasons(t *testing.T) {
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	c := catest.Start(t, catest.Options{Clock: clock})
	client := c.Client(t)
	ctx := context.Background()
	sign := func(token, notAfter string, cn string) (*caclient.Certificates, *ecdsa.PrivateKey, error) {
		key, csr := csrFor(t, cn)
		certs, err := client.Sign(ctx, caclient.SignRequest{CSR: csr, Token: token, NotAfter: notAfter, PublicKey: key.Public()})
		return certs, key, err
	}

	tok := c.Token(t, 1, "gitlab-runner")
	certs, key, err := sign(tok, "", "gitlab-runner")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = sign(tok, "", "gitlab-runner")
	wantReason(t, err, caproto.ReasonTokenUsed)

	_, _, err = sign(c.Token(t, 1, "gitlab-runner"), "200h", "gitlab-runner")
	if ae := wantReason(t, err, caproto.ReasonLifetimeTooLong); ae.Limit != 168*time.Hour {
		t.Errorf("limit %v, want 168h", ae.Limit)
	}
	_, _, err = sign(c.Token(t, 1, "builder"), "", "builder")
	wantReason(t, err, caproto.ReasonNameNotAllowed)

	old := c.Token(t, 1, "gitlab-runner")
	clock.Advance(10 * time.Minute)
	_, _, err = sign(old, "", "gitlab-runner")
	wantReason(t, err, caproto.ReasonTokenExpired)

	pair := tls.Certificate{Certificate: [][]byte{certs.Leaf.Raw, c.Intermediate.Cert.Raw}, PrivateKey: key, Leaf: certs.Leaf}
	if err := c.Authority.Revoke(ca.RevokeRequest{Serial: certs.Leaf.SerialNumber.String(), Passive: true, Operator: true}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Renew(ctx, pair)
	wantReason(t, err, caproto.ReasonCertRevoked)
	_, err = client.RenewWithToken(ctx, pair)
	wantReason(t, err, caproto.ReasonCertRevoked)
}

// TestInferReasonFromStepCA: step-ca sends no reason code; its messages
// give the reasons.
func TestInferReasonFromStepCA(t *testing.T) {
	for _, tc := range []struct {
		op      string
		status  int
		message string
		want    caproto.Reason
		limit   time.Duration
	}{
		{"sign", 403, "requested duration of 168h0m0s is more than the authorized maximum certificate duration of 24h1m0s", caproto.ReasonLifetimeTooLong, 24 * time.Hour},
		{"sign", 403, "requested duration of 1m is less than the authorized minimum certificate duration of 5m0s", caproto.ReasonLifetimeTooShort, 5 * time.Minute},
		{"sign", 401, "token already used", caproto.ReasonTokenUsed, 0},
		{"sign", 401, "authority.Authorize; jwk.AuthorizeSign; invalid token: validation failed, token is expired (exp)", caproto.ReasonTokenExpired, 0},
		{"sign", 401, "invalid token", caproto.ReasonTokenInvalid, 0},
		{"renew", 401, "certificate has been revoked", caproto.ReasonCertRevoked, 0},
		{"renew", 401, "certificate expired on 2026-11-20", caproto.ReasonCertExpired, 0},
		{"renew", 500, "internal server error", "", 0},
	} {
		r, limit := caclient.InferReason(tc.op, tc.status, tc.message)
		if r != tc.want || limit != tc.limit {
			t.Errorf("%s %d %q: got %s %v, want %s %v", tc.op, tc.status, tc.message, r, limit, tc.want, tc.limit)
		}
	}
}
