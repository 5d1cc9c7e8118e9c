// Package emulatortest starts the emulator in-process, seeded with the
// reference deployment, for tests of anything that talks to Roles
// Anywhere or STS (the CLI, interop tests, later the agent). Only tests
// may import it.
package emulatortest

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
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

// Reference is the reference deployment with these names, trusting
// bundle (PEM).
func Reference(bundle []byte) emulator.Reference {
	return emulator.Reference{Account: Account, Region: Region, TrustAnchor: TrustAnchor, Role: Role, Profile: Profile,
		CommonName: CommonName, BundlePEM: bundle, MaxSessionDuration: 43200, DurationSeconds: 3600}
}

// TrustPolicy is the reference setup's trust policy: the trust anchor
// named TrustAnchor, and certificates for CommonName.
var TrustPolicy = Reference(nil).TrustPolicy()

// Seed returns the reference deployment's seed YAML with bundle (PEM) as
// the trust anchor's certificates.
func Seed(bundle []byte) string { return Reference(bundle).Seed() }

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
	return NewReference(t, Reference(pki.EncodeCertificates(bundle...)), now, logger)
}

// NewReference starts the emulator seeded with ref (whose resource names
// must be this package's), on the clock now (nil: the real one), for tests
// that need another shape of the reference deployment: a profile that
// accepts session names, other durations.
func NewReference(t TB, ref emulator.Reference, now func() time.Time, logger *slog.Logger) *Server {
	return NewSeed(t, ref.Seed(), now, logger)
}

// NewSeed starts the emulator over a seed document, such as the
// reference's edited for a test; ARNs are those of this package's
// resource names, empty when the seed lacks them.
func NewSeed(t TB, seedText string, now func() time.Time, logger *slog.Logger) *Server {
	seed, err := emulator.ParseSeed([]byte(seedText), emulator.SeedSource{Name: "emulatortest.yaml"})
	if err != nil {
		t.Fatalf("emulatortest: %v", err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed, Logger: logger, Now: now})
	if err != nil {
		t.Fatalf("emulatortest: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	out := seed.Outputs(srv.URL)
	return &Server{Server: srv, Emulator: emu,
		TrustAnchorARN: out.TrustAnchors[TrustAnchor], ProfileARN: out.Profiles[Profile], RoleARN: out.Roles[Role]}
}

// SessionPolicy is a valid session policy of at least n characters: one
// statement listing actions until it is that long, the kind whose
// packed size passes STS's allotment before its length does.
func SessionPolicy(n int) string {
	var actions []string
	doc := ""
	for i := 0; len(doc) < n; i++ {
		actions = append(actions, fmt.Sprintf("s3:GetObjectVersion%04d", i))
		a, _ := json.Marshal(actions)
		doc = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":` + string(a) + `,"Resource":"*"}]}`
	}
	return doc
}
