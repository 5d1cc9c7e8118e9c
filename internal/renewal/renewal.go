// Package renewal keeps a certificate fresh. It knows when a certificate
// is due (its renewal window), renews it once (over mTLS, falling back to
// step's renewal token when the TLS path itself fails), and runs a
// scheduler that renews at about two thirds of each lifetime with jitter,
// backs off while the CA is away, keeps the current pair until it
// expires, renews at once when asked (RenewNow: SIGHUP in the CLI), and
// reports each step as an Event.
//
// It is a use case: keyless renew, keyless dev and the agent use it. It
// takes a clock, a source of jitter and a logger, so it is tested on a
// fake clock; its errors are typed (*Error, with caclient's *APIError and
// its reason inside).
package renewal

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/keyless-dev/keyless/internal/mldsa"

	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/pki"
)

// Method is how a renewal proves possession of the key.
type Method string

// Methods.
const (
	// Auto renews over mTLS and falls back to the renewal token when the
	// TLS path fails (a TLS-terminating proxy) or the certificate has
	// expired.
	Auto  Method = "auto"
	MTLS  Method = "mtls"
	Token Method = "token"
)

// ParseMethod checks a method's name.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case Auto, MTLS, Token:
		return m, nil
	}
	return "", fmt.Errorf("%q: want auto, mtls or token", s)
}

// Defaults of Config.
const (
	DefaultBackoffMin = 30 * time.Second
	DefaultBackoffMax = 10 * time.Minute
)

// Config configures a Renewer.
type Config struct {
	Client            *caclient.Client
	CertPath, KeyPath string
	Method            Method // empty means Auto
	// ExpiresIn opens the window when at most this much is left; zero
	// means the last third of the lifetime.
	ExpiresIn time.Duration
	// BackoffMin and BackoffMax bound the wait after a failed attempt;
	// zero means the defaults.
	BackoffMin, BackoffMax time.Duration
	// Clock is the scheduler's clock; nil means the real one.
	Clock clock.Clock
	// Jitter returns a random duration in [0, max]; nil means uniform.
	Jitter func(max time.Duration) time.Duration
	// AfterRenew runs after each renewal Run makes (keyless renew's
	// --exec). Its failure is an event; the scheduler goes on.
	AfterRenew func(ctx context.Context, leaf *x509.Certificate) error
	// Events receives what Run does, in order, on Run's goroutine; nil
	// ignores them.
	Events func(Event)
	// Logger gets the fallback from mTLS to the token; nil discards.
	Logger *slog.Logger
}

// Renewer renews one certificate and key pair.
type Renewer struct {
	cfg Config
	now chan struct{}
}

// New checks cfg and returns a Renewer.
func New(cfg Config) (*Renewer, error) {
	if cfg.Client == nil || cfg.CertPath == "" || cfg.KeyPath == "" {
		return nil, errors.New("renewal: a CA client and the certificate and key paths are required")
	}
	if cfg.Method == "" {
		cfg.Method = Auto
	}
	if _, err := ParseMethod(string(cfg.Method)); err != nil {
		return nil, err
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		return nil, fmt.Errorf("renewal: the longest backoff %s is shorter than the first %s", cfg.BackoffMax, cfg.BackoffMin)
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Jitter == nil {
		cfg.Jitter = func(max time.Duration) time.Duration { return rand.N(max + 1) }
	}
	if cfg.Events == nil {
		cfg.Events = func(Event) {}
	}
	cfg.Logger = logline.Or(cfg.Logger)
	return &Renewer{cfg: cfg, now: make(chan struct{}, 1)}, nil
}

// WindowOpens is when renewal of leaf becomes due: expiresIn before its
// expiry, or once two thirds of its lifetime have passed.
func WindowOpens(leaf *x509.Certificate, expiresIn time.Duration) time.Time {
	if expiresIn > 0 {
		return leaf.NotAfter.Add(-expiresIn)
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-life / 3)
}

// ErrMLDSARenewal means the pair's key is ML-DSA, which neither renewal
// method can prove: Go's TLS cannot sign a handshake with it and the
// JOSE library cannot sign step's renewal token. The fix is a new
// enrollment.
var ErrMLDSARenewal = errors.New("ML-DSA certificates cannot be renewed (neither TLS client authentication nor step's renewal token can be signed with ML-DSA in keyless yet); enroll again before it expires: keyless certificate --kty ML-DSA-65 with a new token")

// Error is a renewal the CA (or the network) refused. Leaf is the
// certificate that was not renewed; Expired tells whether it had expired
// by the renewer's clock.
type Error struct {
	Leaf              *x509.Certificate
	CertPath, KeyPath string
	Expired           bool
	Err               error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Result is what Once did.
type Result struct {
	// Renewed is false when the certificate was not due.
	Renewed bool
	// Leaf is the certificate in place afterwards.
	Leaf *x509.Certificate
	// Opens is when the renewal window of the certificate in place
	// opens.
	Opens time.Time
}

// Once renews the pair if it is due (or force), and writes the new
// certificate over CertPath in CertPath's layout.
func (r *Renewer) Once(ctx context.Context, force bool) (Result, error) {
	pair, err := identity.LoadPair(r.cfg.CertPath, r.cfg.KeyPath)
	if err != nil {
		return Result{}, err
	}
	opens := WindowOpens(pair.Leaf, r.cfg.ExpiresIn)
	if !force && r.cfg.Clock.Now().Before(opens) {
		return Result{Leaf: pair.Leaf, Opens: opens}, nil
	}
	leaf, err := r.renew(ctx, pair)
	if err != nil {
		return Result{Leaf: pair.Leaf, Opens: opens}, err
	}
	return Result{Renewed: true, Leaf: leaf, Opens: WindowOpens(leaf, r.cfg.ExpiresIn)}, nil
}

// renew renews pair and writes the new certificate over CertPath.
func (r *Renewer) renew(ctx context.Context, pair tls.Certificate) (*x509.Certificate, error) {
	client := r.cfg.Client
	expired := r.cfg.Clock.Now().After(pair.Leaf.NotAfter)
	if _, ok := pair.PrivateKey.(*mldsa.PrivateKey); ok {
		return nil, &Error{Leaf: pair.Leaf, CertPath: r.cfg.CertPath, KeyPath: r.cfg.KeyPath, Expired: expired, Err: ErrMLDSARenewal}
	}
	var certs *caclient.Certificates
	var err error
	switch {
	case r.cfg.Method == Token || r.cfg.Method == Auto && expired:
		certs, err = client.RenewWithToken(ctx, pair)
	default:
		certs, err = client.Renew(ctx, pair)
		if err != nil && r.cfg.Method == Auto && tlsPathFailed(err) {
			r.cfg.Logger.Warn("renewal over mTLS failed; trying the renewal token", "err", err)
			var tokErr error
			if certs, tokErr = client.RenewWithToken(ctx, pair); tokErr != nil {
				err = fmt.Errorf("%w (and with the renewal token: %v)", err, tokErr)
			} else {
				err = nil
			}
		}
	}
	if err != nil {
		return nil, &Error{Leaf: pair.Leaf, CertPath: r.cfg.CertPath, KeyPath: r.cfg.KeyPath, Expired: expired, Err: err}
	}
	// Keep CertPath's layout: the leaf alone if that is what it held (the
	// chain lives in a chain file), else the leaf and the chain.
	chain := []*x509.Certificate{certs.Leaf}
	if len(pair.Certificate) > 1 {
		chain = append(chain, certs.Intermediates...)
	}
	if err := identity.ReplaceCertificate(r.cfg.CertPath, pki.EncodeCertificates(chain...), r.cfg.KeyPath, pair.Leaf); err != nil {
		return nil, err
	}
	return certs.Leaf, nil
}

// tlsPathFailed tells a failure of the mTLS path itself (no answer, a
// failed handshake, or a CA that never saw the client certificate, as
// behind a TLS-terminating proxy) from a refusal of the certificate,
// which the renewal token would only repeat.
func tlsPathFailed(err error) bool {
	var ae *caclient.APIError
	return !errors.As(err, &ae) || ae.Reason == caproto.ReasonNeedsCertificate
}

// RenewNow makes a running Run renew at once, whatever its schedule or
// backoff. It never blocks; asking twice before Run notices is asking
// once.
func (r *Renewer) RenewNow() {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// Run renews the pair for as long as ctx lives: at about two thirds of
// each lifetime (minus up to a twentieth of it, so a fleet spreads out),
// at once when force is set or RenewNow is called, and after a failure
// again with a wait that doubles from BackoffMin to BackoffMax (less up
// to a quarter of jitter), keeping the current pair meanwhile. It returns
// nil when ctx ends, and an error only when the pair on disk cannot be
// read.
func (r *Renewer) Run(ctx context.Context, force bool) error {
	backoff := time.Duration(0)
	for {
		pair, err := identity.LoadPair(r.cfg.CertPath, r.cfg.KeyPath)
		if err != nil {
			return err
		}
		leaf := pair.Leaf
		now := r.cfg.Clock.Now()
		var at time.Time
		switch {
		case backoff > 0:
			at = now.Add(backoff)
		case force:
			at = now
		default:
			at = WindowOpens(leaf, r.cfg.ExpiresIn)
			if r.cfg.ExpiresIn == 0 {
				at = at.Add(-r.cfg.Jitter(leaf.NotAfter.Sub(leaf.NotBefore) / 20))
			}
		}
		if wait := at.Sub(now); wait > 0 {
			timer := r.cfg.Clock.NewTimer(wait)
			r.cfg.Events(Scheduled{At: at, Serial: leaf.SerialNumber.String(), NotAfter: leaf.NotAfter})
			select {
			case <-ctx.Done():
				timer.Stop()
				r.cfg.Events(Stopping{})
				return nil
			case <-r.now:
				timer.Stop()
				r.cfg.Events(Asked{})
				backoff = 0
			case <-timer.C():
			}
		}
		force = false
		r.cfg.Events(Renewing{Serial: leaf.SerialNumber.String(), Certificate: r.cfg.CertPath})
		renewed, err := r.renew(ctx, pair)
		if err != nil {
			if ctx.Err() != nil {
				r.cfg.Events(Stopping{})
				return nil
			}
			backoff = r.nextBackoff(backoff)
			r.cfg.Events(Failed{Err: err, RetryIn: backoff, NotAfter: leaf.NotAfter})
			continue
		}
		backoff = 0
		r.cfg.Events(Renewed{Leaf: renewed, Certificate: r.cfg.CertPath})
		if r.cfg.AfterRenew != nil {
			if err := r.cfg.AfterRenew(ctx, renewed); err != nil {
				if ctx.Err() != nil {
					r.cfg.Events(Stopping{})
					return nil
				}
				r.cfg.Events(HookFailed{Err: err})
			}
		}
	}
}

// nextBackoff doubles the wait, from BackoffMin up to BackoffMax, less up
// to a quarter of jitter so that runners do not retry in step.
func (r *Renewer) nextBackoff(cur time.Duration) time.Duration {
	next := min(max(cur*2, r.cfg.BackoffMin), r.cfg.BackoffMax)
	return next - r.cfg.Jitter(next/4)
}
