package trustpolicy_test

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/trustpolicy"
)

// TestEvaluatePrepared: a prepared leaf decides as the certificate does,
// and one prepared for another certificate is ignored, so a stale or
// mixed-up value can never grant what the session's own certificate
// would not.
func TestEvaluatePrepared(t *testing.T) {
	p, err := iampolicy.ParseTrustPolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	ca := pkitest.NewRoot(t, "trust-root")
	allowed := ca.Leaf(t, pkitest.LeafOptions{CommonName: "gitlab-runner"})
	other := ca.Leaf(t, pkitest.LeafOptions{CommonName: "runner-2"})
	now := time.Now()
	session := func(leaf *x509.Certificate, prepared *trustpolicy.Leaf) *trustpolicy.Refusal {
		return trustpolicy.Evaluate(p, trustpolicy.Session{Leaf: leaf, Prepared: prepared, AnchorARN: anchor, Account: "111122223333", Now: now})
	}
	if r := session(allowed, trustpolicy.PrepareLeaf(allowed)); r != nil {
		t.Fatalf("prepared allowed leaf refused: %v", r)
	}
	if r := session(other, trustpolicy.PrepareLeaf(other)); r == nil {
		t.Fatal("prepared other leaf allowed")
	}
	if r := session(other, trustpolicy.PrepareLeaf(allowed)); r == nil {
		t.Fatal("a leaf the policy refuses was allowed with another certificate's prepared attributes")
	}
	if got, want := trustpolicy.PrepareLeaf(allowed).SourceIdentity(), trustpolicy.SourceIdentity(allowed); got != want {
		t.Fatalf("prepared source identity %q, want %q", got, want)
	}
}
