package enroll_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
)

func TestBootstrapAndEnroll(t *testing.T) {
	c := catest.Start(t, catest.Options{})
	ctx := context.Background()
	cfg := t.TempDir()
	if _, err := enroll.LoadTrust(cfg, "", ""); !errors.Is(err, enroll.ErrNotBootstrapped) {
		t.Fatalf("before bootstrap: %v", err)
	}
	if _, err := enroll.Bootstrap(ctx, cfg, c.URL, pki.Fingerprint(c.Intermediate.Cert)); !errors.Is(err, caclient.ErrFingerprint) {
		t.Fatalf("the wrong fingerprint: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg, "ca.yaml")); !os.IsNotExist(err) {
		t.Fatalf("a refused bootstrap stored something: %v", err)
	}
	if _, err := enroll.Bootstrap(ctx, cfg, c.URL+"/", pki.Fingerprint(c.Root.Cert)); err != nil {
		t.Fatal(err)
	}
	trust, err := enroll.LoadTrust(cfg, "", "")
	if err != nil || trust.URL != c.URL || !trust.Root.Equal(c.Root.Cert) {
		t.Fatalf("stored trust: %+v %v", trust, err)
	}
	client, err := trust.Client(caclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := enroll.Enroller{Client: client}
	dir := t.TempDir()
	crt, key, chain := filepath.Join(dir, "r.crt"), filepath.Join(dir, "r.key"), filepath.Join(dir, "chain.crt")

	// From the provisioner's password, RSA, the chain in its own file.
	certs, err := e.Enroll(ctx, enroll.Request{Subject: "gitlab-runner", CertPath: crt, KeyPath: key, ChainPath: chain,
		KeyType: enroll.KeyRSA, KeySize: 3072, Provisioner: catest.Runners, ProvisionerPassword: []byte(catest.Password), NotAfter: "168h"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.Load(identity.Files{Certificate: crt, PrivateKey: key, Intermediates: chain}, nil, certs.Leaf.NotBefore)
	if err != nil || id.Certificate.PublicKey.(*rsa.PublicKey).N.BitLen() != 3072 || len(id.Intermediates) != 1 {
		t.Fatalf("the pair on disk: %v", err)
	}
	for _, p := range []string{crt, key, chain} {
		if info, _ := os.Stat(p); info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", p, info.Mode().Perm())
		}
	}

	// Existing files are kept without Force, and nothing is asked of the
	// CA.
	var fe *enroll.FileExists
	if _, err := e.Enroll(ctx, enroll.Request{Subject: "gitlab-runner", CertPath: crt, KeyPath: key, Token: "t"}); !errors.As(err, &fe) || fe.Path != crt {
		t.Fatalf("existing files: %v", err)
	}
	// A token from the CA host, over the old pair.
	certs2, err := e.Enroll(ctx, enroll.Request{Subject: "gitlab-runner", CertPath: crt, KeyPath: key, Force: true, Token: c.Token(t, 1, "gitlab-runner")})
	if err != nil || certs2.Leaf.SerialNumber.Cmp(certs.Leaf.SerialNumber) == 0 {
		t.Fatalf("re-enrollment with a token: %v", err)
	}
	// The CA's refusal comes back with its reason; no file changes.
	before, _ := os.ReadFile(crt)
	_, err = e.Enroll(ctx, enroll.Request{Subject: "builder", CertPath: crt, KeyPath: key, Force: true, Token: c.Token(t, 1, "builder")})
	var ae *caclient.APIError
	if !errors.As(err, &ae) || ae.Reason != caproto.ReasonNameNotAllowed {
		t.Fatalf("a name the provisioner may not issue: %v", err)
	}
	if after, _ := os.ReadFile(crt); string(after) != string(before) {
		t.Error("a refused enrollment changed the certificate")
	}
}

func TestEnrollRefusesBadRequests(t *testing.T) {
	e := enroll.Enroller{}
	dir := t.TempDir()
	for _, tc := range []struct {
		field string
		r     enroll.Request
	}{
		{"token", enroll.Request{Subject: "x"}},
		{"token", enroll.Request{Subject: "x", Token: "t", ProvisionerPassword: []byte("p")}},
		{"kty", enroll.Request{Subject: "x", Token: "t", KeyType: "DSA"}},
		{"kty", enroll.Request{Subject: "x", Token: "t", KeyType: "ML-DSA-99"}},
		{"kty", enroll.Request{Subject: "x", Token: "t", KeyType: "mldsa65"}}, // the name is ML-DSA-65
		{"size", enroll.Request{Subject: "x", Token: "t", KeyType: enroll.KeyRSA, KeySize: 1024}},
	} {
		tc.r.CertPath, tc.r.KeyPath = filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
		var ie *enroll.InputError
		if _, err := e.Enroll(context.Background(), tc.r); !errors.As(err, &ie) || ie.Field != tc.field {
			t.Errorf("%+v: got %v, want an input error for %s", tc.r, err, tc.field)
		}
	}
}
