package renewal_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/renewal"
)

// TestMLDSARenewalRefusedClearly: an ML-DSA pair is refused with
// ErrMLDSARenewal by every method, before any request, and the pair on
// disk is left as it was.
func TestMLDSARenewalRefusedClearly(t *testing.T) {
	r := newRunner(t, catest.Options{})
	dir := t.TempDir()
	r.crt, r.key = filepath.Join(dir, "ml.crt"), filepath.Join(dir, "ml.key")
	e := enroll.Enroller{Client: r.ca.Client(t)}
	if _, err := e.Enroll(context.Background(), enroll.Request{Subject: "gitlab-runner", CertPath: r.crt, KeyPath: r.key, KeyType: enroll.KeyMLDSA65, Token: r.ca.Token(t, 0, "gitlab-runner")}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(r.crt)
	for _, m := range []renewal.Method{renewal.Auto, renewal.MTLS, renewal.Token} {
		_, err := r.renewer(t, renewal.Config{Method: m}).Once(context.Background(), true)
		var re *renewal.Error
		if !errors.As(err, &re) || !errors.Is(err, renewal.ErrMLDSARenewal) {
			t.Errorf("method %s: got %v, want ErrMLDSARenewal", m, err)
		}
	}
	if after, _ := os.ReadFile(r.crt); string(after) != string(before) {
		t.Error("a refused renewal changed the certificate")
	}
}
