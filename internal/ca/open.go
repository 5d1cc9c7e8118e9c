package ca

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/store"
)

// LoadCertificates reads the root and intermediate certificates a
// configuration names.
func LoadCertificates(cfg *Config) (root, intermediate *x509.Certificate, err error) {
	load := func(what, p string) (*x509.Certificate, error) {
		data, err := os.ReadFile(cfg.Path(p))
		if err != nil {
			return nil, fmt.Errorf("%s certificate: %w", what, err)
		}
		certs, err := pki.ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("%s certificate %s: %w", what, cfg.Path(p), err)
		}
		return certs[0], nil
	}
	if root, err = load("root", cfg.Root); err != nil {
		return nil, nil, err
	}
	if intermediate, err = load("intermediate", cfg.Crt); err != nil {
		return nil, nil, err
	}
	return root, intermediate, nil
}

// OpenOptions tune Open.
type OpenOptions struct {
	// ReadOnly opens the store with a shared lock, for commands that
	// only read it.
	ReadOnly bool
	Logger   *slog.Logger
	// Now is the authority's clock; nil means the real one.
	Now func() time.Time
}

// Open makes the Authority of a CA directory in this process: it
// decrypts the intermediate key with password (pki.ErrIncorrectPassword
// when it does not) and opens the bbolt store (store.ErrLocked while
// another process, such as a running keyless ca serve, holds it). The
// caller closes the store.
func Open(cfg *Config, password []byte, o OpenOptions) (*Authority, store.Store, error) {
	root, inter, err := LoadCertificates(cfg)
	if err != nil {
		return nil, nil, err
	}
	keyPath := cfg.Path(cfg.Key)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("intermediate key: %w", err)
	}
	key, err := pki.ParsePrivateKey(keyPEM, func() ([]byte, error) { return password, nil })
	if err != nil {
		return nil, nil, fmt.Errorf("intermediate key %s: %w", keyPath, err)
	}
	db, err := store.OpenBolt(cfg.Path(cfg.DB), store.BoltOptions{ReadOnly: o.ReadOnly})
	if err != nil {
		return nil, nil, err
	}
	a, err := New(Options{Config: cfg, Root: root, Intermediate: inter, Key: key, Store: db, Logger: o.Logger, Now: o.Now})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return a, db, nil
}
