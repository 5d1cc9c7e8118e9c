package caops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/store"
)

// Operator revokes, lists and publishes the CRL of one CA. Implementations
// are not safe for concurrent use; Close releases what they hold.
type Operator interface {
	// Revoke revokes a certificate by serial (decimal, or 0x-prefixed
	// hex), passively: it goes on the CRL and can no longer renew.
	Revoke(ctx context.Context, serial string, reasonCode int, reason string) error
	// List calls fn for every issued certificate o selects, with its
	// status on the operator's clock: all of them oldest first, or with
	// o.Expiring those that are valid and expire within it, soonest
	// first. It streams: the store (or the running CA) is read a part at
	// a time. It stops at fn's first error and returns it.
	List(ctx context.Context, o ListOptions, fn func(Listed) error) error
	// CRL returns the current revocation list, DER.
	CRL(ctx context.Context) ([]byte, error)
	// Remote reports whether it works through the running CA's API.
	Remote() bool
	Close() error
}

// Status is an issued certificate's state.
type Status string

// Statuses.
const (
	Valid   Status = "valid"
	Revoked Status = "revoked"
	Expired Status = "expired"
)

// Listed is an issued certificate and its status.
type Listed struct {
	caproto.Certificate
	Status Status
	// Left is how long it stays valid (negative once expired).
	Left time.Duration
}

// ListOptions select what List lists.
type ListOptions struct {
	// Expiring, when positive, keeps the valid certificates (neither
	// revoked nor expired) that expire within it: keyless ca list
	// --expiring. The store's expiry index finds them, locally and in the
	// running CA, without reading every certificate.
	Expiring time.Duration
}

// lister returns the filter to ask the store or the CA for, and the fn
// that adds the status to each certificate, drops what o does not keep
// (a CA that does not know the filter sends everything), and calls fn.
func (o ListOptions) lister(now time.Time, fn func(Listed) error) (caproto.ListFilter, func(caproto.Certificate) error) {
	var f caproto.ListFilter
	if o.Expiring > 0 {
		f = caproto.ListFilter{NotAfterFrom: now, NotAfterTo: now.Add(o.Expiring)}
	}
	return f, func(c caproto.Certificate) error {
		l := Listed{Certificate: c, Status: Valid, Left: c.NotAfter.Sub(now)}
		switch {
		case c.Revoked:
			l.Status = Revoked
		case now.After(c.NotAfter):
			l.Status = Expired
		}
		if o.Expiring > 0 && (l.Status != Valid || l.Left > o.Expiring) {
			return nil
		}
		return fn(l)
	}
}

// ErrNoPassword is what a Secrets function returns when the operator was
// given no password; Connect passes it on when the operation needs one.
var ErrNoPassword = errors.New("the CA's password is needed")

// Secrets are read only when an operation needs them.
type Secrets struct {
	// Password returns the CA password (ErrNoPassword when none was
	// given). Locally it decrypts the intermediate key; remotely it
	// decrypts the provisioner key, unless ProvisionerPassword is set.
	Password func() ([]byte, error)
	// ProvisionerPassword returns the provisioner key's own password;
	// nil means the CA password.
	ProvisionerPassword func() ([]byte, error)
}

// Access is what an operation needs of the CA.
type Access int

// Accesses.
const (
	// Records reads the store only (list).
	Records Access = iota
	// Keys also needs the CA's key, and writes (revoke, CRL).
	Keys
)

// ConnectOptions shape Connect.
type ConnectOptions struct {
	// CAURL is the running CA's URL; empty means Dir.URL("").
	CAURL string
	// Now is the clock of tokens and of checking the CA's TLS
	// certificate; nil means the real one.
	Now func() time.Time
}

// Connect returns the local Operator when the store is free, and the
// remote one when a running CA holds it (store.ErrLocked).
func (d *Dir) Connect(access Access, s Secrets, o ConnectOptions) (Operator, error) {
	var (
		a   *ca.Authority
		st  store.Store
		err error
	)
	now := o.Now
	if now == nil {
		now = clock.Real.Now
	}
	// A running CA holds the store for as long as it runs: ask it at once
	// rather than wait out OpenBolt's lock timeout first. (OpenBolt's
	// timeout still covers a CA that starts between the two.)
	dbPath, readOnly := d.Config.Path(d.Config.DB), access == Records
	if store.Busy(dbPath, store.BoltOptions{ReadOnly: readOnly}) {
		return d.remote(s, o, now)
	}
	if readOnly {
		st, err = store.OpenBolt(dbPath, store.BoltOptions{ReadOnly: true})
	} else {
		var pw []byte
		if pw, err = password(s.Password); err != nil {
			return nil, err
		}
		a, st, err = d.Authority(pw, ca.OpenOptions{})
	}
	switch {
	case err == nil:
		return &local{a: a, st: st, now: now}, nil
	case errors.Is(err, store.ErrLocked):
		return d.remote(s, o, now)
	default:
		return nil, err
	}
}

func password(f func() ([]byte, error)) ([]byte, error) {
	if f == nil {
		return nil, ErrNoPassword
	}
	return f()
}

type local struct {
	a   *ca.Authority // nil when opened for Records
	st  store.Store
	now func() time.Time
}

func (l *local) Revoke(_ context.Context, serial string, reasonCode int, reason string) error {
	if l.a == nil {
		return errors.New("caops: revoking needs the CA's key")
	}
	return l.a.Revoke(ca.RevokeRequest{Serial: serial, ReasonCode: reasonCode, Reason: reason, Passive: true, Operator: true})
}

func (l *local) List(_ context.Context, o ListOptions, fn func(Listed) error) error {
	f, each := o.lister(l.now(), fn)
	return ca.List(l.st, f, each)
}

func (l *local) CRL(context.Context) ([]byte, error) {
	if l.a == nil {
		return nil, errors.New("caops: the CRL needs the CA's key")
	}
	return l.a.CRL()
}

func (l *local) Remote() bool { return false }
func (l *local) Close() error { return l.st.Close() }

// UnreachableError is a running CA that holds the store but did not
// answer its API.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the CA's database is in use, and the running CA at %s did not answer: %v", e.URL, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

type remote struct {
	d       *Dir
	url     string
	client  *caclient.Client
	secrets Secrets
	now     func() time.Time
}

func (d *Dir) remote(s Secrets, o ConnectOptions, now func() time.Time) (Operator, error) {
	url := d.URL(o.CAURL)
	c, err := caclient.New(url, d.Root, caclient.Options{Now: now})
	if err != nil {
		return nil, err
	}
	return &remote{d: d, url: url, client: c, secrets: s, now: now}, nil
}

// token makes a provisioner token for op, the way an operator proves
// itself to the running CA.
func (r *remote) token(subject, path string) (string, error) {
	pwf := r.secrets.ProvisionerPassword
	if pwf == nil {
		pwf = r.secrets.Password
	}
	pw, err := password(pwf)
	if err != nil {
		return "", err
	}
	p, key, err := r.d.ProvisionerKey("", pw)
	if err != nil {
		return "", err
	}
	return caproto.NewToken(caproto.TokenOptions{Provisioner: p.Name, Key: key, Subject: subject, Audience: r.url + path, Now: r.now()})
}

// reached wraps a failure to get any answer from the running CA.
func (r *remote) reached(err error) error {
	var ae *caclient.APIError
	if err == nil || errors.As(err, &ae) {
		return err
	}
	return &UnreachableError{URL: r.url, Err: err}
}

func (r *remote) Revoke(ctx context.Context, serial string, reasonCode int, reason string) error {
	tok, err := r.token(serial, caproto.PathRevoke)
	if err != nil {
		return err
	}
	return r.reached(r.client.RevokeSerial(ctx, serial, tok, reasonCode, reason))
}

func (r *remote) List(ctx context.Context, o ListOptions, fn func(Listed) error) error {
	tok, err := r.token("list", caproto.PathList)
	if err != nil {
		return err
	}
	f, each := o.lister(r.now(), fn)
	var fnErr error
	err = r.client.List(ctx, tok, f, func(c caproto.Certificate) error {
		fnErr = each(c)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	return r.reached(err)
}

func (r *remote) CRL(ctx context.Context) ([]byte, error) {
	crl, err := r.client.CRL(ctx)
	return crl, r.reached(err)
}

func (r *remote) Remote() bool { return true }
func (r *remote) Close() error { return nil }
