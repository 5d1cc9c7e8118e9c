package ca_test

import (
	"path/filepath"
	"testing"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
)

// TestIssuanceEndsItsAnnouncement: every issuance announces its write to
// a Bolt store (so a commit under way waits for it) and ends the
// announcement whether it writes or is refused: one left behind would
// make every later commit wait its maximum for a write that never comes.
func TestIssuanceEndsItsAnnouncement(t *testing.T) {
	db, err := store.OpenBolt(filepath.Join(t.TempDir(), "ca.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := newAuthority(t, authorityOptions{store: db})
	check := func(what string) {
		t.Helper()
		if n := db.Announced(); n != 0 {
			t.Fatalf("after %s: %d announced writes left, want 0", what, n)
		}
	}
	key := pkitest.Key(t, pkitest.P256+"#leaf")
	good := e.token(tok{})
	if _, err := e.a.Sign(ca.SignRequest{CSR: csr(t, key, "gitlab-runner", "gitlab-runner"), Token: good}); err != nil {
		t.Fatal(err)
	}
	check("a certificate issued")
	_, err = e.a.Sign(ca.SignRequest{CSR: csr(t, key, "gitlab-runner", "gitlab-runner"), Token: good})
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenUsed)
	check("a replayed token (refused by the store)")
	_, err = e.a.Sign(ca.SignRequest{CSR: csr(t, key, "gitlab-runner", "gitlab-runner"), Token: "not a token"})
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenInvalid)
	check("a bad token (refused before the store)")

	old, oldKey := e.sign("gitlab-runner", "")
	check("another certificate issued")
	if _, err := e.a.Renew(e.chain(old)); err != nil {
		t.Fatal(err)
	}
	check("a renewal")
	_, err = e.a.Renew(nil)
	refused(t, err, ca.KindUnauthorized, caproto.ReasonNeedsCertificate)
	check("a renewal without a certificate")
	if _, err := e.a.RenewWithToken(e.renewToken(old, oldKey, "", e.now())); err != nil {
		t.Fatal(err)
	}
	check("a renewal with a token")
	_, err = e.a.RenewWithToken("not a token")
	refused(t, err, ca.KindUnauthorized, caproto.ReasonTokenInvalid)
	check("a bad renewal token")
}
