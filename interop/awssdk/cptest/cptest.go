// Package cptest starts keyless's emulator with nothing in it but an
// account, a region and an operator key, behind the awsmodel Recorder, so
// that an interop test can create a whole setup through a real client
// (the AWS SDK for Go v2, the AWS CLI) and have every control-plane call
// checked against AWS's service models. interop/awssdk's tests and
// interop/awscli's (through a replace directive) use it; only tests may.
package cptest

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/keyless-dev/keyless/interop/awssdk/awsmodel"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// The operator key the emulator trusts for the control plane. Tests pass
// it to clients through environment variables or config files, never on
// a command line.
const (
	Account         = "111122223333"
	Region          = "us-east-1"
	AccessKeyID     = "AKIAKEYLESSINTEROP01"
	SecretAccessKey = "keyless-interop-operator-secret-000000000"
	OperatorName    = "interop-admin"
)

// Env is a running emulator with the model check around it.
type Env struct {
	*httptest.Server
	Emulator *emulator.Emulator
	Recorder *awsmodel.Recorder
}

// Start starts the emulator for the test's duration. When the test ends
// it fails it with every difference between the emulator's answers and
// AWS's models. Missing models (scripts/aws-models not run) skip the test,
// or fail it under KEYLESS_INTEROP=require.
func Start(t *testing.T) *Env {
	t.Helper()
	models, err := awsmodel.LoadDir(awsmodel.Dir())
	if errors.Is(err, awsmodel.ErrNoModels) {
		testkit.Unavailable(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	seed, err := emulator.ParseSeed([]byte(`account: "`+Account+`"
region: `+Region+`
operators:
  - name: `+OperatorName+`
    accessKeyId: `+AccessKeyID+`
    secretAccessKey: `+SecretAccessKey+`
`), emulator.SeedSource{Name: "cptest.yaml"})
	if err != nil {
		t.Fatalf("cptest: %v", err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed})
	if err != nil {
		t.Fatalf("cptest: %v", err)
	}
	rec := &awsmodel.Recorder{Next: emu, Models: models}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { rec.Verify(t) })
	return &Env{Server: srv, Emulator: emu, Recorder: rec}
}
