// Package catest runs a keyless CA in-process for tests of anything that
// enrolls, renews or operates a CA: the real ca.Authority behind the real
// step-compatible API (caapi) over HTTPS on loopback, with a fake or real
// clock, a memory or bbolt store, and two provisioners whose keys and
// password the test knows. Its listener can be taken down and brought
// back, so tests see a CA outage without giving up its address. Only
// tests may import it.
package catest

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/caapi"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// Password encrypts both provisioners' keys.
const Password = "correct horse battery staple"

// Provisioner names: Admin may issue any name; Runners may issue
// gitlab-runner and gitlab-runner-*, for at most 168h.
const (
	Admin   = "admin"
	Runners = "runners"
)

// provisionerKeys are made once per process: each costs a 600,000-round
// PBKDF2.
var (
	provOnce sync.Once
	provKeys [2]*caproto.ProvisionerKey
	provPriv [2]*jose.JSONWebKey
	provErr  error
)

func provisionerKeys() ([2]*caproto.ProvisionerKey, [2]*jose.JSONWebKey, error) {
	provOnce.Do(func() {
		for i := range provKeys {
			k, err := caproto.NewProvisionerKey([]byte(Password), nil)
			if err != nil {
				provErr = err
				return
			}
			priv, err := caproto.DecryptProvisionerKey(k.EncryptedKey, []byte(Password))
			if err != nil {
				provErr = err
				return
			}
			provKeys[i], provPriv[i] = k, priv
		}
	})
	return provKeys, provPriv, provErr
}

// Options shape the CA.
type Options struct {
	// Clock is the CA's clock (and its clients'); nil means the real one.
	// A fake clock should start near the real time; the CA's own
	// certificates are valid for ten years from then.
	Clock *testkit.Clock
	// Store holds the CA's records; nil means a memory store.
	Store store.Store
	// RenewAfterExpiry and DisableRenewal set the admin provisioner's
	// policy ("" and false: the defaults).
	RenewAfterExpiry string
	DisableRenewal   bool
	// Logger receives the CA's log; nil discards it.
	Logger *slog.Logger
}

// CA is a running test CA.
type CA struct {
	Authority          *ca.Authority
	Root, Intermediate *pkitest.CA
	// URL is https://127.0.0.1:PORT.
	URL string
	// RootFile is the root certificate as PEM in a temporary file.
	RootFile string
	// Keys are the admin and runners provisioners' private keys.
	Keys [2]*jose.JSONWebKey
	// ConfigYAML is the configuration the CA started with.
	ConfigYAML []byte

	now func() time.Time
	ln  *switchListener
}

// Start runs a CA until the test ends.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	pub, priv, err := provisionerKeys()
	if err != nil {
		t.Fatalf("catest: provisioner keys: %v", err)
	}
	c := &CA{Keys: priv, now: time.Now}
	if o.Clock != nil {
		c.now = o.Clock.Now
	}
	c.Root = pkitest.NewLongLivedRoot(t, "catest-root")
	c.Intermediate = c.Root.Intermediate(t, "catest-int")
	keyJSON := func(k *caproto.ProvisionerKey) string {
		b, err := k.Public.MarshalJSON()
		if err != nil {
			t.Fatalf("catest: %v", err)
		}
		return string(b)
	}
	extra := ""
	if o.RenewAfterExpiry != "" {
		extra += "\n    renewAfterExpiry: " + o.RenewAfterExpiry
	}
	if o.DisableRenewal {
		extra += "\n    disableRenewal: true"
	}
	c.ConfigYAML = fmt.Appendf(nil, `name: Test CA
address: 127.0.0.1:0
dnsNames: [127.0.0.1, localhost]
root: root.crt
crt: int.crt
key: int.key
db: db
provisioners:
  - name: %s
    type: JWK
    key: '%s'
    encryptedKey: %s
    allow: ["*"]%s
  - name: %s
    type: JWK
    key: '%s'
    encryptedKey: %s
    allow: [gitlab-runner, gitlab-runner-*]
    maxDuration: 168h
`, Admin, keyJSON(pub[0]), pub[0].EncryptedKey, extra, Runners, keyJSON(pub[1]), pub[1].EncryptedKey)
	cfg, err := ca.ParseConfig(c.ConfigYAML)
	if err != nil {
		t.Fatalf("catest: config: %v\n%s", err, c.ConfigYAML)
	}
	st := o.Store
	if st == nil {
		st = store.NewMemory()
	}
	logger := o.Logger
	logger = logline.Or(logger)
	c.Authority, err = ca.New(ca.Options{Config: cfg, Root: c.Root.Cert, Intermediate: c.Intermediate.Cert, Key: c.Intermediate.Key,
		Store: st, Now: c.now, Logger: logger})
	if err != nil {
		t.Fatalf("catest: ca.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	c.ln = &switchListener{Listener: ln}
	// Served as keyless ca serve serves it (httptest's StartTLS would put
	// its own certificate first).
	srv := caapi.Serve(c.ln, caapi.Config{Authority: c.Authority, Logger: logger}, c.now)
	t.Cleanup(func() { srv.Close() })
	c.URL = "https://" + ln.Addr().String()
	c.RootFile = pkitest.WriteFile(t, t.TempDir(), "root_ca.crt", pki.EncodeCertificates(c.Root.Cert))
	return c
}

// Client returns a caclient for the CA on the CA's clock.
func (c *CA) Client(t testing.TB) *caclient.Client {
	t.Helper()
	cl, err := caclient.New(c.URL, c.Root.Cert, caclient.Options{Now: c.now})
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	t.Cleanup(cl.CloseIdleConnections) // before the CA stops: it need not wait for them
	return cl
}

// Token makes a one-time sign token for subject (and sans, default the
// subject) from provisioner Admin (0) or Runners (1).
func (c *CA) Token(t testing.TB, provisioner int, subject string, sans ...string) string {
	t.Helper()
	if len(sans) == 0 {
		sans = []string{subject}
	}
	tok, err := caproto.NewToken(caproto.TokenOptions{Provisioner: []string{Admin, Runners}[provisioner], Key: c.Keys[provisioner],
		Subject: subject, SANs: sans, Audience: c.URL + caproto.PathSign, Now: c.now()})
	if err != nil {
		t.Fatalf("catest: token: %v", err)
	}
	return tok
}

// Roots is a pool of the CA's root.
func (c *CA) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(c.Root.Cert)
	return pool
}

// SetDown takes the CA off the network (true) or brings it back (false):
// while down, every connection is closed as soon as it is accepted, as
// when a CA host's service is stopped behind a proxy. Requests in flight
// finish.
func (c *CA) SetDown(down bool) { c.ln.down.Store(down) }

// Accepted counts the connections accepted so far, refused ones included.
func (c *CA) Accepted() int64 { return c.ln.accepted.Load() }

type switchListener struct {
	net.Listener
	down     atomic.Bool
	accepted atomic.Int64
}

func (l *switchListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.accepted.Add(1)
		if !l.down.Load() {
			return conn, nil
		}
		conn.Close()
	}
}
