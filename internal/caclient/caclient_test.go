package caclient_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// serverCert makes a TLS server certificate for 127.0.0.1 from ca.
func serverCert(t *testing.T, ca *pkitest.CA) tls.Certificate {
	key := pkitest.Key(t, "p256#server")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key}
}

// fakeCA serves /root/{fp} with root and /1.0/sign with leaf and chain,
// over TLS with the given server certificate: a CA, or someone in the way.
func fakeCA(t *testing.T, tlsCert tls.Certificate, root *x509.Certificate, chain ...*x509.Certificate) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/root/", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"ca": string(pki.EncodeCertificates(root))})
	})
	mux.HandleFunc("/1.0/sign", func(w http.ResponseWriter, r *http.Request) {
		var pems []string
		for _, c := range chain {
			pems = append(pems, string(pki.EncodeCertificates(c)))
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"crt": pems[0], "certChain": pems})
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestBootstrap(t *testing.T) {
	root := pkitest.NewRoot(t, "bootstrap-root")
	inter := root.Intermediate(t, "bootstrap-int")
	srv := fakeCA(t, serverCert(t, inter), root.Cert)
	fp := pki.Fingerprint(root.Cert)

	got, err := caclient.Bootstrap(context.Background(), srv.URL, strings.ToUpper(fp[:10])+":"+fp[10:], 0)
	if err != nil || !got.Equal(root.Cert) {
		t.Fatalf("Bootstrap: %v", err)
	}
	other := pki.Fingerprint(pkitest.NewRoot(t, "other-root").Cert)
	if _, err := caclient.Bootstrap(context.Background(), srv.URL, other, 0); !errors.Is(err, caclient.ErrFingerprint) {
		t.Errorf("another root's fingerprint: got %v, want ErrFingerprint", err)
	}

	// Someone in the way serves the real root (it is public) behind their
	// own TLS certificate: the fingerprint matches, the connection does not.
	mitm := pkitest.NewRootWithKey(t, "mitm-root", pkitest.Key(t, "p256#mitm"))
	evil := fakeCA(t, serverCert(t, mitm), root.Cert)
	if _, err := caclient.Bootstrap(context.Background(), evil.URL, fp, 0); err == nil || !strings.Contains(err.Error(), "does not verify with the root it served") {
		t.Errorf("impostor's TLS certificate: got %v", err)
	}
}

func TestSignRefusesWhatItDidNotAskFor(t *testing.T) {
	root := pkitest.NewRoot(t, "sign-root")
	inter := root.Intermediate(t, "sign-int")
	ours := pkitest.Key(t, "p256#ours")
	for name, tt := range map[string]struct {
		leaf *x509.Certificate
		pub  crypto.PublicKey
		want string
	}{
		"certificate for another key": {inter.Leaf(t, pkitest.LeafOptions{Key: pkitest.Key(t, "p256#theirs")}), ours.Public(), "not for our key"},
		"certificate from another CA": {pkitest.NewRoot(t, "elsewhere").Leaf(t, pkitest.LeafOptions{Key: ours}), ours.Public(), "does not verify with its root"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := fakeCA(t, serverCert(t, inter), root.Cert, tt.leaf, inter.Cert)
			c, err := caclient.New(srv.URL, root.Cert, caclient.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Sign(context.Background(), caclient.SignRequest{CSR: []byte("csr"), Token: "t", PublicKey: tt.pub})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	// The matching answer is accepted.
	srv := fakeCA(t, serverCert(t, inter), root.Cert, inter.Leaf(t, pkitest.LeafOptions{Key: ours}), inter.Cert)
	c, _ := caclient.New(srv.URL, root.Cert, caclient.Options{})
	if _, err := c.Sign(context.Background(), caclient.SignRequest{CSR: []byte("csr"), Token: "t", PublicKey: ours.Public()}); err != nil {
		t.Errorf("a good answer was refused: %v", err)
	}
}

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

// TestInferReasonFromStepCA: step-ca (and keyless ca before reason codes)
// send no reason code; their messages give the reasons.
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
		// keyless ca before reason codes, when the client certificate did
		// not reach it.
		{"renew", 401, "renewal needs the current certificate: connect with it (mTLS) or send a renewal token", caproto.ReasonNeedsCertificate, 0},
	} {
		r, limit := caclient.InferReason(tc.op, tc.status, tc.message)
		if r != tc.want || limit != tc.limit {
			t.Errorf("%s %d %q: got %s %v, want %s %v", tc.op, tc.status, tc.message, r, limit, tc.want, tc.limit)
		}
	}
}
