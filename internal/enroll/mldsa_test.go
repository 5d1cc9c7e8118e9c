package enroll_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/mldsa"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// TestEnrollMLDSA gets an ML-DSA certificate of each parameter set from
// keyless's CA (ECDSA-signed, so any X.509 stack verifies the chain),
// reads the pair back, and signs a CreateSession request with it that
// sigv4 verifies.
func TestEnrollMLDSA(t *testing.T) {
	c := catest.Start(t, catest.Options{})
	ctx := context.Background()
	e := enroll.Enroller{Client: c.Client(t)}
	for kty, want := range map[string]*mldsa.Params{enroll.KeyMLDSA: mldsa.ML65, enroll.KeyMLDSA44: mldsa.ML44, enroll.KeyMLDSA65: mldsa.ML65, enroll.KeyMLDSA87: mldsa.ML87} {
		t.Run(kty, func(t *testing.T) {
			dir := t.TempDir()
			crt, key := filepath.Join(dir, "r.crt"), filepath.Join(dir, "r.key")
			certs, err := e.Enroll(ctx, enroll.Request{Subject: "gitlab-runner", CertPath: crt, KeyPath: key, KeyType: kty,
				Provisioner: catest.Runners, ProvisionerPassword: []byte(catest.Password), NotAfter: "168h"})
			if err != nil {
				t.Fatal(err)
			}
			id, err := identity.Load(identity.Files{Certificate: crt, PrivateKey: key}, nil, certs.Leaf.NotBefore.Add(time.Minute))
			if err != nil {
				t.Fatalf("the pair on disk: %v", err)
			}
			k, ok := id.Key.(*mldsa.PrivateKey)
			if !ok || k.Params() != want {
				t.Fatalf("key %T, want %s", id.Key, want.Name())
			}
			if got := pki.HelperCertificateData(id.Certificate); got.KeyType != want.Name() {
				t.Errorf("read-certificate-data keyType %q, want %q", got.KeyType, want.Name())
			}
			s := sigv4.X509Signer{Key: id.Key, Certificate: id.Certificate, Intermediates: id.Intermediates}
			req, _ := http.NewRequest("POST", "https://rolesanywhere.us-east-1.amazonaws.com/sessions", nil)
			now := certs.Leaf.NotBefore.Add(time.Hour)
			if err := s.Sign(req, nil, "us-east-1", now); err != nil {
				t.Fatal(err)
			}
			if _, err := sigv4.VerifyX509(req, nil, sigv4.X509VerifyOptions{Now: now}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
