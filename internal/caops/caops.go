// Package caops is what an operator does with a keyless CA's directory:
// create it (Init) and open it (Open), serve it (Dir.Start, Dir.Serve:
// the step-compatible API over HTTPS, reloading the configuration when
// asked), mint enrollment tokens (Dir.Token), and revoke certificates,
// list them and publish the CRL through an Operator: the local one works
// on the directory while the CA is stopped, the remote one through the
// running CA's API while it holds the store, and Dir.Connect picks.
//
// It is a use case: keyless ca's commands and keyless dev call it. Its
// errors are typed (*ExposedError, *UnknownProvisionerError,
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
	"runtime"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/store"
)

// ErrNoCA means the directory holds no CA configuration.
var ErrNoCA = fmt.Errorf("no CA here: %w", fs.ErrNotExist)

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
func Init(path string, o ca.InitOptions) (*Dir, error) {
	if _, err := ca.Init(path, o); err != nil {
		return nil, err
	}
	return Open(path)
}

// Open reads a CA directory's configuration and certificates.
func Open(path string) (*Dir, error) {
	cfg, err := ca.LoadConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoCA)
	}
	if err != nil {
		return nil, err
	}
	root, inter, err := ca.LoadCertificates(cfg)
	if err != nil {
		return nil, err
	}
	return &Dir{Path: path, Config: cfg, Root: root, Intermediate: inter}, nil
}

// Bundle is the root and the intermediate as PEM: a Roles Anywhere trust
// anchor's certificate bundle.
func (d *Dir) Bundle() []byte { return pki.EncodeCertificates(d.Root, d.Intermediate) }

// ExposedError is a secret file that group or others can read.
type ExposedError struct {
	What, Path string
	Mode       fs.FileMode
}

func (e *ExposedError) Error() string {
	return fmt.Sprintf("%s %s has mode %04o: group or others can read it", e.What, e.Path, e.Mode)
}

// CheckPrivate refuses a file that group or others can read: a CA key,
// its password or the configuration holding the encrypted provisioner
// key must be this user's alone. (Windows has no such modes.)
func CheckPrivate(what, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return &ExposedError{What: what, Path: path, Mode: info.Mode().Perm()}
	}
	return nil
}

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

// Token mints a one-time token that buys one certificate for the
// subject, within the provisioner's policy: made on the CA host, it
// means the runner never learns the provisioner password.
func (d *Dir) Token(r TokenRequest) (string, error) {
	p, key, err := d.ProvisionerKey(r.Provisioner, r.Password)
	if err != nil {
		return "", err
	}
	sans := r.SANs
	if len(sans) == 0 {
		sans = []string{r.Subject}
	}
	return caproto.NewToken(caproto.TokenOptions{Provisioner: p.Name, Key: key, Subject: r.Subject, SANs: sans,
		Audience: d.URL(r.CAURL) + caproto.PathSign, RootSHA256: pki.Fingerprint(d.Root), Lifetime: r.TTL, Now: r.Now})
}
