package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/pki"
)

// CA certificate lifetimes, as step ca init makes them: ten years for
// both, since replacing a root means re-trusting it everywhere (here:
// re-importing the Roles Anywhere trust anchor).
const (
	rootLifetime         = 10 * 365 * 24 * time.Hour
	intermediateLifetime = 10 * 365 * 24 * time.Hour
)

// InitOptions describe a new CA.
type InitOptions struct {
	Name        string
	DNSNames    []string
	Address     string
	Provisioner string
	Password    []byte
	// ProvisionerPassword encrypts the provisioner's key; empty means
	// Password (step ca init's choice). A separate one keeps the CA keys'
	// password away from everyone who enrolls with the provisioner's.
	ProvisionerPassword []byte
	// KeyType is "EC" (P-256, the default) or "RSA" (3072 bits).
	KeyType string
	// Allow are the provisioner's name patterns; nil means ["*"].
	Allow []string
	Now   time.Time
	Rand  io.Reader
}

// ErrExists means the directory already holds a CA.
var ErrExists = errors.New("a CA already exists here")

// Init creates a CA in dir: root and intermediate keys (encrypted with the
// password) and certificates, a JWK provisioner whose private key is
// encrypted with the same password, and config/ca.yaml. It refuses to
// touch a directory that already has any of those files.
func Init(dir string, o InitOptions) (*Config, error) {
	if o.Name == "" || len(o.DNSNames) == 0 || o.Address == "" || o.Provisioner == "" {
		return nil, errors.New("name, DNS names, address and provisioner are required")
	}
	if len(o.Password) == 0 {
		return nil, errors.New("the password is empty")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Rand == nil {
		o.Rand = randReader
	}
	if o.Allow == nil {
		o.Allow = []string{"*"}
	}
	for _, f := range []string{ConfigFile, RootCertFile, IntermediateFile, RootKeyFile, IntermediateKey, DatabaseFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%w: %s exists", ErrExists, filepath.Join(dir, f))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	newKey := func() (crypto.Signer, error) {
		switch o.KeyType {
		case "", "EC":
			return ecdsa.GenerateKey(elliptic.P256(), o.Rand)
		case "RSA":
			return rsa.GenerateKey(o.Rand, 3072)
		}
		return nil, fmt.Errorf("key type %q: want EC or RSA", o.KeyType)
	}
	rootKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("generating the root key: %w", err)
	}
	interKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("generating the intermediate key: %w", err)
	}
	root, err := caCertificate(o, "Root CA", rootLifetime, nil, rootKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("making the root certificate: %w", err)
	}
	inter, err := caCertificate(o, "Intermediate CA", intermediateLifetime, root, rootKey, interKey)
	if err != nil {
		return nil, fmt.Errorf("making the intermediate certificate: %w", err)
	}

	rootKeyPEM, err := pki.EncryptPrivateKey(rootKey, o.Password)
	if err != nil {
		return nil, err
	}
	interKeyPEM, err := pki.EncryptPrivateKey(interKey, o.Password)
	if err != nil {
		return nil, err
	}
	provPassword := o.ProvisionerPassword
	if len(provPassword) == 0 {
		provPassword = o.Password
	}
	pk, err := caproto.NewProvisionerKey(provPassword, o.Rand)
	if err != nil {
		return nil, err
	}
	pub, err := pk.Public.MarshalJSON()
	if err != nil {
		return nil, err
	}
	cfg := &Config{
		Dir: dir, Name: o.Name, Address: o.Address, DNSNames: o.DNSNames,
		Root: RootCertFile, Crt: IntermediateFile, Key: IntermediateKey, RootKey: RootKeyFile, DB: DatabaseFile,
		Provisioners: []ProvisionerConfig{{
			Name: o.Provisioner, Type: "JWK", Key: string(pub), EncryptedKey: pk.EncryptedKey, Allow: o.Allow,
			DefaultDuration: Duration(DefaultLifetime), MinDuration: Duration(DefaultMinLifetime), MaxDuration: Duration(DefaultMaxLifetime),
		}},
	}
	data, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	for _, d := range []struct {
		name string
		perm fs.FileMode
	}{{"certs", 0o755}, {"secrets", 0o700}, {"config", 0o700}, {"db", 0o700}} {
		if err := os.MkdirAll(filepath.Join(dir, d.name), d.perm); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		data []byte
		perm fs.FileMode
	}{
		{RootKeyFile, rootKeyPEM, 0o600},
		{IntermediateKey, interKeyPEM, 0o600},
		{RootCertFile, pki.EncodeCertificates(root), 0o644},
		{IntermediateFile, pki.EncodeCertificates(inter), 0o644},
		// The configuration holds the encrypted provisioner key.
		{ConfigFile, data, 0o600},
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return nil, err
		}
	}
	return ParseConfigIn(dir, data)
}

// ParseConfigIn parses configuration data for the CA in dir.
func ParseConfigIn(dir string, data []byte) (*Config, error) {
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	return cfg, nil
}

// caCertificate makes a CA certificate for key, named after the CA: the
// root (parent nil: self-signed, one level of intermediates below it) or
// the intermediate (signed by parent's key, no CA below it).
func caCertificate(o InitOptions, role string, lifetime time.Duration, parent *x509.Certificate, parentKey, key crypto.Signer) (*x509.Certificate, error) {
	serial, err := randomSerial(o.Rand)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: o.Name + " " + role, Organization: []string{o.Name}},
		NotBefore: o.Now.Add(-backdate), NotAfter: o.Now.Add(lifetime),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: 1, MaxPathLenZero: parent != nil,
		SignatureAlgorithm: signatureAlgorithm(parentKey),
	}
	if parent == nil {
		parent = tmpl
	} else {
		tmpl.MaxPathLen = 0
	}
	der, err := x509.CreateCertificate(o.Rand, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
