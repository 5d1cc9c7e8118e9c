package renewal_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/renewal"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// runner is a CA on a fake clock and a runner enrolled with it.
type runner struct {
	clock    *testkit.Clock
	ca       *catest.CA
	crt, key string
}

func newRunner(t *testing.T, o catest.Options) *runner {
	t.Helper()
	r := &runner{clock: testkit.NewClock(time.Now().Truncate(time.Second))}
	o.Clock = r.clock
	r.ca = catest.Start(t, o)
	dir := t.TempDir()
	r.crt, r.key = filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
	e := enroll.Enroller{Client: r.ca.Client(t)}
	if _, err := e.Enroll(context.Background(), enroll.Request{Subject: "gitlab-runner", CertPath: r.crt, KeyPath: r.key, Token: r.ca.Token(t, 0, "gitlab-runner")}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *runner) serial(t *testing.T) string {
	t.Helper()
	pair, err := identity.LoadPair(r.crt, r.key)
	if err != nil {
		t.Fatalf("the pair on disk does not load: %v", err)
	}
	return pair.Leaf.SerialNumber.String()
}

func (r *runner) renewer(t *testing.T, c renewal.Config) *renewal.Renewer {
	t.Helper()
	c.Client, c.CertPath, c.KeyPath, c.Clock = r.ca.Client(t), r.crt, r.key, r.clock
	rn, err := renewal.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return rn
}

// events collects a Run's events for the test to wait on.
type events chan renewal.Event

func (ev events) next(t *testing.T) renewal.Event {
	t.Helper()
	select {
	case e := <-ev:
		return e
	case <-time.After(time.Minute):
		t.Fatal("no event from the renewer for a minute")
		return nil
	}
}

// expect returns the next event, which must be of type E.
func expect[E renewal.Event](t *testing.T, ev events) E {
	t.Helper()
	e := ev.next(t)
	got, ok := e.(E)
	if !ok {
		var want E
		t.Fatalf("event %T %+v, want %T", e, e, want)
	}
	return got
}

// TestDaemonSurvivesCAOutage: with the CA unreachable, Run keeps the
// current certificate and retries with waits that double up to the cap;
// once the CA is back it renews, writes leaf and chain, and runs the
// hook. Everything moves on the fake clock and the renewer's events.
func TestDaemonSurvivesCAOutage(t *testing.T) {
	r := newRunner(t, catest.Options{})
	before := r.serial(t)
	ev := make(events, 64)
	hooks := make(chan string, 4)
	rn := r.renewer(t, renewal.Config{
		BackoffMin: 100 * time.Millisecond, BackoffMax: 800 * time.Millisecond,
		Events: func(e renewal.Event) { ev <- e },
		AfterRenew: func(_ context.Context, leaf *x509.Certificate) error {
			hooks <- leaf.SerialNumber.String()
			return nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(ctx, false) }()

	first := expect[renewal.Scheduled](t, ev)
	opens := renewal.WindowOpens(mustLeaf(t, r), 0)
	if first.At.After(opens) || first.At.Before(opens.Add(-24*time.Hour/20)) {
		t.Errorf("first renewal at %v, want within a twentieth of the lifetime before %v", first.At, opens)
	}

	// The CA goes away; RenewNow asks for a renewal at once.
	r.ca.SetDown(true)
	rn.RenewNow()
	expect[renewal.Asked](t, ev)
	var waits []time.Duration
	for len(waits) < 5 {
		expect[renewal.Renewing](t, ev)
		f := expect[renewal.Failed](t, ev)
		var re *renewal.Error
		if !errors.As(f.Err, &re) || re.Leaf.SerialNumber.String() != before {
			t.Fatalf("failure %v is not a renewal error for the current certificate", f.Err)
		}
		waits = append(waits, f.RetryIn)
		s := expect[renewal.Scheduled](t, ev)
		if !s.At.Equal(r.clock.Now().Add(f.RetryIn)) {
			t.Fatalf("retry scheduled at %v, want now + %v", s.At, f.RetryIn)
		}
		if len(waits) == 5 {
			break // the CA comes back before the next attempt starts
		}
		r.clock.Advance(f.RetryIn)
	}
	if !(waits[0] < waits[2] && waits[2] < waits[4] && waits[4] <= 800*time.Millisecond && waits[0] >= 75*time.Millisecond) {
		t.Errorf("retry waits %v do not back off from 100ms up to the 800ms cap", waits)
	}
	if got := r.serial(t); got != before {
		t.Errorf("the certificate changed while the CA was down: %s", got)
	}

	// The CA comes back: the next attempt renews.
	r.ca.SetDown(false)
	r.clock.Advance(waits[4])
	expect[renewal.Renewing](t, ev)
	renewed := expect[renewal.Renewed](t, ev)
	if got := <-hooks; got != renewed.Leaf.SerialNumber.String() {
		t.Errorf("the hook saw %s, want the new certificate %s", got, renewed.Leaf.SerialNumber)
	}
	if got := r.serial(t); got == before || got != renewed.Leaf.SerialNumber.String() {
		t.Errorf("the certificate on disk is %s (before %s, renewed %s)", got, before, renewed.Leaf.SerialNumber)
	}
	data, _ := os.ReadFile(r.crt)
	if certs, err := pki.ParseCertificates(data); err != nil || len(certs) != 2 {
		t.Errorf("renewed file: %d certificates, %v (want leaf and intermediate)", len(certs), err)
	}
	// And it schedules the next renewal of the new certificate.
	next := expect[renewal.Scheduled](t, ev)
	if next.Serial != renewed.Leaf.SerialNumber.String() {
		t.Errorf("next renewal is of %s", next.Serial)
	}
	cancel()
	expect[renewal.Stopping](t, ev)
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func mustLeaf(t *testing.T, r *runner) *x509.Certificate {
	t.Helper()
	pair, err := identity.LoadPair(r.crt, r.key)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

// TestOnceRenewsInTheWindow: Once leaves a certificate alone before its
// window opens, says when it opens, and renews it after.
func TestOnceRenewsInTheWindow(t *testing.T) {
	r := newRunner(t, catest.Options{})
	rn := r.renewer(t, renewal.Config{})
	before := r.serial(t)
	res, err := rn.Once(context.Background(), false)
	if err != nil || res.Renewed {
		t.Fatalf("a fresh certificate: %+v %v", res, err)
	}
	if want := res.Leaf.NotAfter.Add(-res.Leaf.NotAfter.Sub(res.Leaf.NotBefore) / 3); !res.Opens.Equal(want) {
		t.Errorf("window opens %v, want %v", res.Opens, want)
	}
	r.clock.Set(res.Opens.Add(time.Second))
	res, err = rn.Once(context.Background(), false)
	if err != nil || !res.Renewed || r.serial(t) == before {
		t.Fatalf("in the window: %+v %v", res, err)
	}
	// --expires-in: a window of the last hour has not opened.
	early := r.renewer(t, renewal.Config{ExpiresIn: time.Hour})
	if res, err := early.Once(context.Background(), false); err != nil || res.Renewed {
		t.Fatalf("expires-in 1h: %+v %v", res, err)
	}
}

// TestRefusalsAreTyped: a revoked certificate's renewal fails with the
// CA's reason and the certificate that was not renewed; an expired one is
// marked expired, and renews with the token where the CA allows it.
func TestRefusalsAreTyped(t *testing.T) {
	r := newRunner(t, catest.Options{RenewAfterExpiry: "1h"})
	rn := r.renewer(t, renewal.Config{})
	leaf := mustLeaf(t, r)

	r.clock.Set(leaf.NotAfter.Add(30 * time.Minute))
	res, err := rn.Once(context.Background(), false)
	if err != nil || !res.Renewed {
		t.Fatalf("expired within renewAfterExpiry, method auto: %+v %v", res, err)
	}

	r.clock.Set(res.Leaf.NotAfter.Add(2 * time.Hour))
	_, err = rn.Once(context.Background(), false)
	var re *renewal.Error
	var ae *caclient.APIError
	if !errors.As(err, &re) || !re.Expired || !errors.As(err, &ae) || ae.Reason != caproto.ReasonCertExpired {
		t.Fatalf("expired beyond the grace: got %v", err)
	}

	r2 := newRunner(t, catest.Options{})
	if err := r2.ca.Authority.Revoke(ca.RevokeRequest{Serial: r2.serial(t), Passive: true, Operator: true}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []renewal.Method{renewal.Auto, renewal.MTLS, renewal.Token} {
		_, err := r2.renewer(t, renewal.Config{Method: m}).Once(context.Background(), true)
		if !errors.As(err, &re) || re.Expired || !errors.As(err, &ae) || ae.Reason != caproto.ReasonCertRevoked {
			t.Errorf("revoked, method %s: got %v", m, err)
		}
	}
}

func TestParseMethodAndConfig(t *testing.T) {
	if _, err := renewal.ParseMethod("carrier-pigeon"); err == nil {
		t.Error("an unknown method was accepted")
	}
	if _, err := renewal.New(renewal.Config{}); err == nil {
		t.Error("a renewer without a client or paths")
	}
	r := newRunner(t, catest.Options{})
	if _, err := renewal.New(renewal.Config{Client: r.ca.Client(t), CertPath: r.crt, KeyPath: r.key, BackoffMin: time.Minute, BackoffMax: time.Second}); err == nil {
		t.Error("a cap below the first backoff was accepted")
	}
}
