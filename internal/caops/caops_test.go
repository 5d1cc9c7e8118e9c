package caops_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/caops"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/enroll"
	"github.com/keyless-dev/keyless/internal/secretfile"
	"github.com/keyless-dev/keyless/internal/store"
)

var password = []byte("correct horse battery staple")

func secrets(pw []byte) caops.Secrets {
	return caops.Secrets{Password: func() ([]byte, error) {
		if pw == nil {
			return nil, caops.ErrNoPassword
		}
		return pw, nil
	}}
}

func rootPool(d *caops.Dir) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(d.Root)
	return pool
}

// enrollOne gets a certificate from the running CA and returns its serial.
func enrollOne(t *testing.T, d *caops.Dir, url string) string {
	t.Helper()
	tok, err := d.Token(caops.TokenRequest{Password: password, Subject: "gitlab-runner", CAURL: url})
	if err != nil {
		t.Fatal(err)
	}
	trust := &enroll.Trust{URL: url, Root: d.Root}
	client, err := trust.Client(caclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certs, err := (&enroll.Enroller{Client: client}).Enroll(context.Background(), enroll.Request{Subject: "gitlab-runner",
		CertPath: filepath.Join(dir, "r.crt"), KeyPath: filepath.Join(dir, "r.key"), Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	return certs.Leaf.SerialNumber.String()
}

// TestOperatorLocalAndRemote: operator commands work on the directory
// while the CA is stopped and through its API while it runs and holds the
// store, with the same results.
func TestOperatorLocalAndRemote(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ca")
	d, err := caops.Init(path, ca.InitOptions{Name: "Ops CA", DNSNames: []string{"127.0.0.1"}, Address: "127.0.0.1:0", Provisioner: "runners",
		Password: password, Allow: []string{"gitlab-runner"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := caops.Init(path, ca.InitOptions{Name: "again", DNSNames: []string{"x"}, Address: ":1", Provisioner: "p", Password: password}); !errors.Is(err, ca.ErrExists) {
		t.Fatalf("a second init: %v", err)
	}

	run, err := d.Start(caops.ServeOptions{Password: password})
	if err != nil {
		t.Fatal(err)
	}
	url := run.Server.URL()
	// The API is offered over HTTP/2, as step-ca's is.
	h2 := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: rootPool(d)}}}
	if resp, err := h2.Get(url + "/health"); err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("GET /health: %v %+v", err, resp)
	} else {
		resp.Body.Close()
	}
	first := enrollOne(t, d, url)

	// Running: the store is held, so the operator goes through the API,
	// with a provisioner token (the password is needed for it).
	op, err := d.Connect(caops.Records, secrets(nil), caops.ConnectOptions{CAURL: url})
	if err != nil || !op.Remote() {
		t.Fatalf("connect while running: %v remote=%v", err, op != nil && op.Remote())
	}
	if _, err := listAll(op, caops.ListOptions{}); !errors.Is(err, caops.ErrNoPassword) {
		t.Fatalf("list through the API without the password: %v", err)
	}
	op, err = d.Connect(caops.Keys, secrets(password), caops.ConnectOptions{CAURL: url})
	if err != nil || !op.Remote() {
		t.Fatalf("connect for keys while running: %v", err)
	}
	if err := op.Revoke(ctx, first, 1, "test"); err != nil {
		t.Fatalf("revoke through the API: %v", err)
	}
	checkRevoked(t, op, first)

	unreachable, _ := d.Connect(caops.Records, secrets(password), caops.ConnectOptions{CAURL: "https://127.0.0.1:1"})
	var ue *caops.UnreachableError
	if _, err := listAll(unreachable, caops.ListOptions{}); !errors.As(err, &ue) || ue.URL != "https://127.0.0.1:1" {
		t.Fatalf("a running CA that does not answer: %v", err)
	}
	if _, err := d.Start(caops.ServeOptions{Password: password}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a second server on the same store: %v", err)
	}

	// Stopped: the same through the directory.
	second := enrollOne(t, d, url)
	if err := run.Close(); err != nil {
		t.Fatal(err)
	}
	op, err = d.Connect(caops.Keys, secrets(password), caops.ConnectOptions{})
	if err != nil || op.Remote() {
		t.Fatalf("connect while stopped: %v", err)
	}
	if err := op.Revoke(ctx, second, 0, ""); err != nil {
		t.Fatal(err)
	}
	checkRevoked(t, op, first, second)
	op.Close()
	if _, err := d.Connect(caops.Keys, secrets([]byte("wrong")), caops.ConnectOptions{}); err == nil {
		t.Fatal("the wrong password opened the CA's key")
	}
}

func checkRevoked(t *testing.T, op caops.Operator, serials ...string) {
	t.Helper()
	ctx := context.Background()
	list, err := listAll(op, caops.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var revoked []string
	for _, c := range list {
		if c.Status == caops.Revoked {
			revoked = append(revoked, c.Serial)
		}
	}
	der, err := op.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	var onCRL []string
	for _, e := range crl.RevokedCertificateEntries {
		onCRL = append(onCRL, e.SerialNumber.String())
	}
	slices.Sort(revoked)
	slices.Sort(onCRL)
	slices.Sort(serials)
	if !slices.Equal(revoked, serials) || !slices.Equal(onCRL, serials) {
		t.Errorf("revoked in the list %v, on the CRL %v, want %v (remote=%v)", revoked, onCRL, serials, op.Remote())
	}
}

// TestSecretsChecks: a readable configuration stops the CA from starting;
// an unknown provisioner and a wrong provisioner password are told apart.
func TestSecretsChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca")
	d, err := caops.Init(path, ca.InitOptions{Name: "Ops CA", DNSNames: []string{"127.0.0.1"}, Address: "127.0.0.1:0", Provisioner: "runners", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(path, ca.ConfigFile), 0o644); err != nil {
		t.Fatal(err)
	}
	var ee *secretfile.ExposedError
	if _, err := d.Start(caops.ServeOptions{Password: password}); !errors.As(err, &ee) || ee.Mode != 0o644 {
		t.Fatalf("a readable configuration: %v", err)
	}
	if err := os.Chmod(filepath.Join(path, ca.ConfigFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d.Config.Path(d.Config.Key), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(caops.ServeOptions{Password: password}); !errors.As(err, &ee) || ee.What != "the intermediate key" {
		t.Fatalf("a readable intermediate key: %v", err)
	}
	var up *caops.UnknownProvisionerError
	if _, err := d.Token(caops.TokenRequest{Provisioner: "nobody", Password: password, Subject: "x"}); !errors.As(err, &up) || up.Have[0] != "runners" {
		t.Fatalf("unknown provisioner: %v", err)
	}
	if _, err := d.Token(caops.TokenRequest{Password: []byte("wrong"), Subject: "x"}); !errors.Is(err, caproto.ErrWrongPassword) {
		t.Fatalf("wrong provisioner password: %v", err)
	}
	if _, err := caops.Open(filepath.Join(t.TempDir(), "none")); !errors.Is(err, caops.ErrNoCA) {
		t.Fatalf("no CA: %v", err)
	}
}

// TestInitRefusesWhatOthersCouldChange: a weak password, and a directory
// another user could write, are refused before anything is written; a CA
// whose configuration became writable by others is refused on Open.
func TestInitRefusesWhatOthersCouldChange(t *testing.T) {
	opts := ca.InitOptions{Name: "Ops CA", DNSNames: []string{"127.0.0.1"}, Address: "127.0.0.1:0", Provisioner: "runners", Password: []byte("elevenchars")}
	path := filepath.Join(t.TempDir(), "ca")
	if _, err := caops.Init(path, opts); !errors.Is(err, secretfile.ErrWeak) {
		t.Fatalf("an 11-character password: %v", err)
	}
	opts.Password = password
	opts.ProvisionerPassword = []byte("short")
	if _, err := caops.Init(path, opts); !errors.Is(err, secretfile.ErrWeak) {
		t.Fatalf("a 5-character provisioner password: %v", err)
	}
	opts.ProvisionerPassword = nil

	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	var ee *secretfile.ExposedError
	if _, err := caops.Init(filepath.Join(shared, "a", "ca"), opts); !errors.As(err, &ee) || !ee.Dir {
		t.Fatalf("a CA under a world-writable directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(shared, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("something was created under the refused directory: %v", err)
	}

	if _, err := caops.Init(path, opts); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(path, ca.ConfigFile), 0o620); err != nil {
		t.Fatal(err)
	}
	if _, err := caops.Open(path); !errors.As(err, &ee) || !ee.Writable {
		t.Fatalf("a configuration others can write: %v", err)
	}
}

// TestTokenOnlyForAllowedNames: ca token refuses, at mint time, a subject
// or SAN the provisioner may not issue, naming what it may.
func TestTokenOnlyForAllowedNames(t *testing.T) {
	d, err := caops.Init(filepath.Join(t.TempDir(), "ca"), ca.InitOptions{Name: "Ops CA", DNSNames: []string{"127.0.0.1"}, Address: "127.0.0.1:0",
		Provisioner: "runners", Password: password, Allow: []string{"gitlab-runner", "gitlab-runner-*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Token(caops.TokenRequest{Password: password, Subject: "gitlab-runner-3"}); err != nil {
		t.Fatalf("an allowed name: %v", err)
	}
	for _, r := range []caops.TokenRequest{
		{Password: password, Subject: "admin"},
		{Password: password, Subject: "gitlab-runner", SANs: []string{"gitlab-runner", "admin"}},
	} {
		var nae *caops.NotAllowedError
		_, err := d.Token(r)
		if !errors.As(err, &nae) || nae.Name != "admin" || !strings.Contains(err.Error(), "(allowed: gitlab-runner, gitlab-runner-*)") {
			t.Errorf("%+v: got %v", r, err)
		}
	}
}

// TestReloadChecksLikeStart: a reload (SIGHUP) rereads the configuration
// through Open's checks: one that others can now change is refused and
// the running configuration stays.
func TestReloadChecksLikeStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca")
	d, err := caops.Init(path, ca.InitOptions{Name: "Ops CA", DNSNames: []string{"127.0.0.1"}, Address: "127.0.0.1:0", Provisioner: "runners", Password: password, Allow: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := d.Start(caops.ServeOptions{Password: password})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	if n, err := run.Reload(); err != nil || n != 1 {
		t.Fatalf("a clean reload: %d, %v", n, err)
	}
	cfg := filepath.Join(path, ca.ConfigFile)
	for _, mode := range []os.FileMode{0o666, 0o644} {
		if err := os.Chmod(cfg, mode); err != nil {
			t.Fatal(err)
		}
		var ee *secretfile.ExposedError
		if _, err := run.Reload(); !errors.As(err, &ee) {
			t.Errorf("reload with the configuration at %04o: %v", mode, err)
		}
	}
	if err := os.Chmod(cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(path, "config"), 0o770); err != nil {
		t.Fatal(err)
	}
	var ee *secretfile.ExposedError
	if _, err := run.Reload(); !errors.As(err, &ee) || !ee.Dir {
		t.Errorf("reload with a group-writable config directory: %v", err)
	}
}

// listAll collects what op lists.
func listAll(op caops.Operator, o caops.ListOptions) ([]caops.Listed, error) {
	var out []caops.Listed
	err := op.List(context.Background(), o, func(l caops.Listed) error {
		out = append(out, l)
		return nil
	})
	return out, err
}
