// Package caops is what an operator does with a keyless CA's directory:
// create it (Init) and open it (Open), serve it (Dir.Start, Dir.Serve:
// the step-compatible API over HTTPS, reloading the configuration when
// asked), mint enrollment tokens (Dir.Token), and revoke certificates,
// list them and publish the CRL through an Operator: the local one works
// on the directory while the CA is stopped, the remote one through the
// running CA's API while it holds the store, and Dir.Connect picks.
//
// It is a use case: keyless ca's commands and keyless dev call it. Its
// errors are typed (secretfile's, *UnknownProvisionerError,
// *UnreachableError, ErrNoCA, ErrNoPassword, and ca's and store's); the
// CLI adds the hints.
package caops

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/secretfile"
	"github.com/keyless-dev/keyless/internal/store"
)

// ErrNoCA means the directory holds no CA configuration. It wraps
// fs.ErrNotExist.
var ErrNoCA error = noCAError{}

// noCAError is ErrNoCA: a static value, where fmt.Errorf would run fmt at
// the start of every keyless command.
type noCAError struct{}

func (noCAError) Error() string { return "no CA here: file does not exist" }
func (noCAError) Unwrap() error { return fs.ErrNotExist }

// Dir is a CA directory opened for work.
type Dir struct {
	Path               string
	Config             *ca.Config
	Root, Intermediate *x509.Certificate
}

// DefaultDir is where a CA lives unless told otherwise:
// $XDG_DATA_HOME/keyless/ca, else ~/.local/share/keyless/ca.
func DefaultDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "keyless", "ca")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "keyless", "ca")
	}
	return "keyless-ca"
}

// Init creates a CA in path (ca.ErrExists if there is one) and opens it.
// It refuses a password shorter than secretfile.MinPasswordLength
// (secretfile.ErrWeak), and a directory, or a directory above it, that
// another user owns or can write (*secretfile.OwnerError,
// *secretfile.ExposedError): whoever can change the configuration
// decides what the CA signs.
func Init(path string, o ca.InitOptions) (*Dir, error) {
	if err := secretfile.CheckStrength("the CA password", o.Password); err != nil {
		return nil, err
	}
	if len(o.ProvisionerPassword) > 0 {
		if err := secretfile.CheckStrength("the provisioner password", o.ProvisionerPassword); err != nil {
			return nil, err
		}
	}
	if err := checkNewDir(path); err != nil {
		return nil, err
	}
	if _, err := ca.Init(path, o); err != nil {
		return nil, err
	}
	return Open(path)
}

// checkNewDir checks the CA directory when it exists, else the nearest
// directory above it that does, which the new one will be made in.
func checkNewDir(path string) error {
	dir, what := path, "the CA directory"
	for {
		_, err := os.Stat(dir)
		if err == nil {
			return secretfile.CheckDir(what, dir)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s %s: %w", what, dir, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fmt.Errorf("%s %s: %w", what, path, err)
		}
		dir, what = parent, "the directory to create the CA in"
	}
}

// Open reads a CA directory's configuration and certificates. It first
// checks that nobody but this user (or root) can change them: the
// directory and those above it, the configuration, the certificates,
// the keys and the database must be theirs and writable by nobody else
// (*secretfile.OwnerError, *secretfile.ExposedError). A configuration
// swapped by another user could name their own provisioner or policy.
func Open(path string) (*Dir, error) {
	if _, err := os.Stat(filepath.Join(path, ca.ConfigFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCA)
	}
	// From here on the CA is read through its real path, which the check
	// found no other user can redirect.
	real, err := secretfile.RealDir("the CA directory", path)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(real, ca.ConfigFile)
	if err := checkOwned("the CA configuration", cfgPath); err != nil {
		return nil, err
	}
	cfg, err := ca.LoadConfig(real)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCA)
	}
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ what, path string }{
		{"the root certificate", cfg.Root}, {"the intermediate certificate", cfg.Crt},
		{"the intermediate key", cfg.Key}, {"the root key", cfg.RootKey}, {"the CA database", cfg.DB},
	} {
		if f.path == "" {
			continue
		}
		err := checkOwned(f.what, cfg.Path(f.path))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	root, inter, err := ca.LoadCertificates(cfg)
	if err != nil {
		return nil, err
	}
	return &Dir{Path: real, Config: cfg, Root: root, Intermediate: inter}, nil
}

// checkOwned checks a file and the directory it is in (the directories
// above are checked with the CA's, or, for a file kept elsewhere, here).
func checkOwned(what, path string) error {
	if err := secretfile.CheckDir(what+"'s directory", filepath.Dir(path)); err != nil {
		return err
	}
	return secretfile.CheckOwned(what, path)
}

// Bundle is the root and the intermediate as PEM: a Roles Anywhere trust
// anchor's certificate bundle.
func (d *Dir) Bundle() []byte { return pki.EncodeCertificates(d.Root, d.Intermediate) }

// CheckPrivate refuses a file that group or others can read or change,
// or that another user owns: a CA key, its password or the configuration
// holding the encrypted provisioner key must be this user's alone
// (*secretfile.ExposedError, *secretfile.OwnerError).
func CheckPrivate(what, path string) error { return secretfile.CheckFile(what, path) }

// Authority opens the CA's key and store in this process, refusing an
// intermediate key others can read. store.ErrLocked means a running CA
// (or another operator command) holds the store; pki.ErrIncorrectPassword
// that password is not the CA's.
func (d *Dir) Authority(password []byte, o ca.OpenOptions) (*ca.Authority, store.Store, error) {
	if err := CheckPrivate("the intermediate key", d.Config.Path(d.Config.Key)); err != nil {
		return nil, nil, err
	}
	return ca.Open(d.Config, password, o)
}

// URL is the CA's URL as this machine reaches it: override when given,
// else its first DNS name and the configured port.
func (d *Dir) URL(override string) string {
	if override != "" {
		return strings.TrimSuffix(override, "/")
	}
	_, port, _ := net.SplitHostPort(d.Config.Address)
	return "https://" + net.JoinHostPort(d.Config.DNSNames[0], port)
}

// UnknownProvisionerError names a provisioner the CA does not have.
type UnknownProvisionerError struct {
	Name string
	Have []string
}

func (e *UnknownProvisionerError) Error() string {
	return fmt.Sprintf("no provisioner %q (have: %s)", e.Name, strings.Join(e.Have, ", "))
}

// WrongPasswordError is a provisioner key the password did not decrypt.
type WrongPasswordError struct{ Provisioner string }

func (e *WrongPasswordError) Error() string {
	return fmt.Sprintf("provisioner %s: %v", e.Provisioner, caproto.ErrWrongPassword)
}
func (e *WrongPasswordError) Unwrap() error { return caproto.ErrWrongPassword }

// ProvisionerKey decrypts the key of provisioner name (empty: the first).
func (d *Dir) ProvisionerKey(name string, password []byte) (*ca.ProvisionerConfig, *jose.JSONWebKey, error) {
	var p *ca.ProvisionerConfig
	var have []string
	for i := range d.Config.Provisioners {
		have = append(have, d.Config.Provisioners[i].Name)
		if p == nil && (name == "" || d.Config.Provisioners[i].Name == name) {
			p = &d.Config.Provisioners[i]
		}
	}
	if p == nil {
		return nil, nil, &UnknownProvisionerError{Name: name, Have: have}
	}
	key, err := caproto.DecryptProvisionerKey(p.EncryptedKey, password)
	if errors.Is(err, caproto.ErrWrongPassword) {
		return nil, nil, &WrongPasswordError{Provisioner: p.Name}
	}
	if err != nil {
		return nil, nil, err
	}
	return p, key, nil
}

// TokenRequest is an enrollment token to mint.
type TokenRequest struct {
	Provisioner string // empty: the first
	Password    []byte // the provisioner key's
	Subject     string
	SANs        []string // empty: the subject
	TTL         time.Duration
	// CAURL is the CA's URL as the runner reaches it (the token's
	// audience); empty means URL("").
	CAURL string
	Now   time.Time
}

// NotAllowedError is a token asked for a name its provisioner may not
// issue: the CA would refuse the certificate, so the token is not made.
type NotAllowedError struct {
	Provisioner, Name string
	Allow             []string
}

func (e *NotAllowedError) Error() string {
	allow := "nothing"
	if len(e.Allow) > 0 {
		allow = strings.Join(e.Allow, ", ")
	}
	return fmt.Sprintf("provisioner %s may not issue certificates for %q (allowed: %s)", e.Provisioner, e.Name, allow)
}

// Token mints a one-time token that buys one certificate for the
// subject, within the provisioner's policy: made on the CA host, it
// means the runner never learns the provisioner password. A subject or
// SAN the provisioner may not issue is refused here (*NotAllowedError),
// not later by the CA when the runner spends the token.
func (d *Dir) Token(r TokenRequest) (string, error) {
	p, key, err := d.ProvisionerKey(r.Provisioner, r.Password)
	if err != nil {
		return "", err
	}
	sans := r.SANs
	if len(sans) == 0 {
		sans = []string{r.Subject}
	}
	if !p.Allows(pki.NameCN, r.Subject) {
		return "", &NotAllowedError{Provisioner: p.Name, Name: r.Subject, Allow: p.Allow}
	}
	for _, name := range sans {
		if !p.Allows(pki.NameKind(name), name) {
			return "", &NotAllowedError{Provisioner: p.Name, Name: name, Allow: p.Allow}
		}
	}
	return caproto.NewToken(caproto.TokenOptions{Provisioner: p.Name, Key: key, Subject: r.Subject, SANs: sans,
		Audience: d.URL(r.CAURL) + caproto.PathSign, RootSHA256: pki.Fingerprint(d.Root), Lifetime: r.TTL, Now: r.Now})
}
