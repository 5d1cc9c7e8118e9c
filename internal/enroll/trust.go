package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/pki"
)

// Trust is a CA this machine trusts: its URL and its root certificate.
type Trust struct {
	URL      string
	Root     *x509.Certificate
	RootFile string
}

// Client returns a client of the CA that trusts its root alone.
func (t *Trust) Client(o caclient.Options) (*caclient.Client, error) {
	c, err := caclient.New(t.URL, t.Root, o)
	if err != nil {
		return nil, &InputError{Field: "ca-url", Err: err}
	}
	return c, nil
}

// ErrNotBootstrapped means no CA was given and none was bootstrapped.
var ErrNotBootstrapped = errors.New("no CA: give its URL and root, or bootstrap one")

// stored is what Bootstrap keeps in the configuration directory.
type stored struct {
	CAURL       string `yaml:"ca-url"`
	Fingerprint string `yaml:"fingerprint"`
	Root        string `yaml:"root"`
}

const storedFile = "ca.yaml"

// DefaultConfigDir is where Bootstrap keeps the CA's root and URL:
// $XDG_CONFIG_HOME/keyless, else ~/.config/keyless.
func DefaultConfigDir() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "keyless")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config", "keyless")
	}
	return ".keyless"
}

// Bootstrap fetches the CA's root, accepts it only if its SHA-256 is
// fingerprint (caclient.ErrFingerprint otherwise, with nothing stored)
// and the CA's TLS certificate chains to it, and stores the root and the
// URL in dir, where LoadTrust finds them.
func Bootstrap(ctx context.Context, dir, caURL, fingerprint string) (*Trust, error) {
	root, err := caclient.Bootstrap(ctx, caURL, fingerprint, 0)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	t := &Trust{URL: strings.TrimSuffix(caURL, "/"), Root: root, RootFile: filepath.Join(dir, "root_ca.crt")}
	if err := atomicfile.WriteFile(t.RootFile, pki.EncodeCertificates(root), 0o644); err != nil {
		return nil, err
	}
	data, err := yaml.Marshal(stored{CAURL: t.URL, Fingerprint: pki.Fingerprint(root), Root: t.RootFile})
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, storedFile), data, 0o644); err != nil {
		return nil, err
	}
	return t, nil
}

// Stored returns the CA URL and root file Bootstrap stored in dir;
// ErrNotBootstrapped when there are none.
func Stored(dir string) (caURL, rootFile string, err error) {
	path := filepath.Join(dir, storedFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", ErrNotBootstrapped
	}
	if err != nil {
		return "", "", err
	}
	var s stored
	if err := yaml.Unmarshal(data, &s); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	return s.CAURL, s.Root, nil
}

// LoadTrust finds the CA to use: caURL and rootFile where given, the rest
// from what Bootstrap stored in dir (ErrNotBootstrapped when that is
// needed and absent), and reads the root.
func LoadTrust(dir, caURL, rootFile string) (*Trust, error) {
	given := rootFile != ""
	if caURL == "" || rootFile == "" {
		u, r, err := Stored(dir)
		if err != nil {
			return nil, err
		}
		if caURL == "" {
			caURL = u
		}
		if rootFile == "" {
			rootFile = r
		}
	}
	// A bad root file is the caller's input when it was given, and the
	// stored configuration's fault otherwise.
	fail := func(err error) error {
		if given {
			return &InputError{Field: "root", Err: err}
		}
		return fmt.Errorf("the root %s stored by keyless bootstrap: %w", rootFile, err)
	}
	data, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, fail(err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, fail(fmt.Errorf("%s: %w", rootFile, err))
	}
	return &Trust{URL: strings.TrimSuffix(caURL, "/"), Root: certs[0], RootFile: rootFile}, nil
}
