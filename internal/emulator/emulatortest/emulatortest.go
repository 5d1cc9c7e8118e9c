// Package emulatortest starts the emulator in-process, seeded with the
// reference deployment, for tests of anything that talks to Roles
// Anywhere or STS (the CLI, interop tests, later the agent). Only tests
// may import it.
package emulatortest

import (
	"crypto/x509"
	"log/slog"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/pki"
)

// TB is what the package needs of a test.
type TB interface {
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Names of the reference deployment's resources.
const (
	Account     = "111122223333"
	Region      = "us-east-1"
	TrustAnchor = "gitlab-runner-ca"
	Profile     = "homelab-profile"
	Role        = "ci-deployer"
	// CommonName is the subject CN the role's trust policy accepts.
	CommonName = "gitlab-runner"
)

// TrustPolicy is the reference setup's trust policy: the trust anchor
// named TrustAnchor, and certificates for CommonName.
const TrustPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],
  "Condition":{"ArnEquals":{"aws:SourceArn":"${trustAnchors.gitlab-runner-ca.arn}"},
               "StringEquals":{"aws:PrincipalTag/x509Subject/CN":"gitlab-runner"}}}]}`

// Seed returns the reference deployment's seed YAML with bundle (PEM) as
// the trust anchor's certificates.
func Seed(bundle []byte) string {
	indent := func(s string, n int) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+pad)
	}
	return `account: "` + Account + `"
region: ` + Region + `
trustAnchors:
  - name: ` + TrustAnchor + `
    certificateBundlePem: |
` + indent(string(bundle), 6) + `
roles:
  - name: ` + Role + `
    maxSessionDuration: 43200
    assumeRolePolicy: |
` + indent(TrustPolicy, 6) + `
profiles:
  - name: ` + Profile + `
    roles: [` + Role + `]
    durationSeconds: 3600
`
}

// Server is an emulator behind httptest (plain HTTP on 127.0.0.1).
type Server struct {
	*httptest.Server
	Emulator                            *emulator.Emulator
	TrustAnchorARN, ProfileARN, RoleARN string
}

// New starts the reference deployment trusting the given CA certificates;
// it stops when the test ends. logger may be nil.
func New(t TB, logger *slog.Logger, bundle ...*x509.Certificate) *Server {
	return NewAt(t, nil, logger, bundle...)
}

// NewAt is New on the clock now (nil: the real one), for tests that move a
// fake clock.
func NewAt(t TB, now func() time.Time, logger *slog.Logger, bundle ...*x509.Certificate) *Server {
	seed, err := emulator.ParseSeed([]byte(Seed(pki.EncodeCertificates(bundle...))), emulator.SeedSource{Name: "emulatortest.yaml"})
	if err != nil {
		t.Fatalf("emulatortest: %v", err)
	}
	emu := emulator.New(emulator.Config{Seed: seed, Logger: logger, Now: now})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	out := seed.Outputs(srv.URL)
	return &Server{Server: srv, Emulator: emu,
		TrustAnchorARN: out.TrustAnchors[TrustAnchor], ProfileARN: out.Profiles[Profile], RoleARN: out.Roles[Role]}
}
