// Package identity loads a signing identity (private key, certificate and
// intermediates) from the files a user names, in the forms AWS's credential
// helper accepts: a PEM or DER certificate with a separate key file, or a
// PKCS#12 file holding both. Every error names the file and its role
// (certificate, private key, intermediates), so the CLI can point at the
// flag to fix. Commands and (later) the agent use it; it reads files but
// does nothing else.
package identity

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

// Roles of the files, as FileError reports them.
const (
	RoleCertificate   = "certificate"
	RolePrivateKey    = "private key"
	RoleIntermediates = "intermediates"
)

// Sentinel errors wrapped in a FileError.
var (
	ErrKeyMismatch      = errors.New("the private key does not belong to the certificate")
	ErrNoPrivateKey     = errors.New("a PEM or DER certificate needs its private key file")
	ErrKeyWithPKCS12    = errors.New("the certificate is a PKCS#12 file, which carries its own key")
	ErrChainWithPKCS12  = errors.New("the certificate is a PKCS#12 file, which carries its own intermediates")
	ErrNoCertificateArg = errors.New("no certificate file given")
)

// FileError is a problem with one of the files.
type FileError struct {
	Role string // RoleCertificate, RolePrivateKey or RoleIntermediates
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s %s: %v", e.Role, e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// Files names the files of an identity.
type Files struct {
	// Certificate is a PEM certificate (the leaf first; any further
	// certificates are intermediates), a DER certificate, or a PKCS#12 file.
	Certificate string
	// PrivateKey is the key file; empty when Certificate is PKCS#12.
	PrivateKey string
	// Intermediates optionally names a PEM bundle of intermediates, which
	// replaces any found after the leaf in Certificate.
	Intermediates string
	// CertificateData, when set, is the content of Certificate, already
	// read by the caller; the file is then not read again (it may be a
	// pipe, which can be read only once).
	CertificateData []byte
}

func (f Files) certificate() ([]byte, error) {
	if f.CertificateData != nil {
		return f.CertificateData, nil
	}
	return ReadFile(RoleCertificate, f.Certificate)
}

// Check catches a wrong combination of files without parsing or decrypting
// anything: a PEM or DER certificate needs a key file, a PKCS#12 file takes
// neither a key file nor an intermediates file, and the named files exist.
// It is cheap enough to run even when cached credentials will be used, so
// a command fails or succeeds the same way whatever the cache holds.
func Check(f Files) error {
	if f.Certificate == "" {
		return ErrNoCertificateArg
	}
	data, err := f.certificate()
	if err != nil {
		return err
	}
	if !bytes.Contains(data, []byte("-----BEGIN")) && pki.IsPKCS12(data) {
		if f.PrivateKey != "" {
			return &FileError{RolePrivateKey, f.PrivateKey, ErrKeyWithPKCS12}
		}
		if f.Intermediates != "" {
			return &FileError{RoleIntermediates, f.Intermediates, ErrChainWithPKCS12}
		}
		return nil
	}
	if f.PrivateKey == "" {
		return &FileError{RoleCertificate, f.Certificate, ErrNoPrivateKey}
	}
	for _, p := range []struct{ role, path string }{{RolePrivateKey, f.PrivateKey}, {RoleIntermediates, f.Intermediates}} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return statError(p.role, p.path, err)
		}
	}
	return nil
}

// PasswordFunc returns the password of the encrypted file at path.
type PasswordFunc func(path string) ([]byte, error)

// Load reads and checks an identity: the files parse, the key belongs to
// the certificate, and the certificate is one Roles Anywhere accepts at now
// (pki.CheckLeaf); a zero now skips that last check, for diagnostics that
// must work on any certificate. password is called only for an encrypted
// file.
func Load(f Files, password PasswordFunc, now time.Time) (*pki.Identity, error) {
	if err := Check(f); err != nil {
		return nil, err
	}
	data, err := f.certificate()
	if err != nil {
		return nil, err
	}
	var id *pki.Identity
	if pki.IsPKCS12(data) {
		id, err = pki.ParsePKCS12(data, passwordFor(password, f.Certificate))
		if err != nil {
			return nil, &FileError{RoleCertificate, f.Certificate, err}
		}
	} else {
		certs, err := pki.ParseCertificates(data)
		if err != nil {
			return nil, &FileError{RoleCertificate, f.Certificate, err}
		}
		key, err := LoadKey(f.PrivateKey, password)
		if err != nil {
			return nil, err
		}
		id = &pki.Identity{Key: key, Certificate: certs[0], Intermediates: certs[1:]}
		if !pki.KeyMatchesCertificate(key, id.Certificate) {
			// A pair replacement interrupted between its renames: the
			// new key is in place and its certificate still pending.
			// Only this user's: another user could plant a certificate
			// for this public key, issued by any CA.
			if pending, err := readOwn(f.Certificate + PendingSuffix); err == nil {
				if pc, err := pki.ParseCertificates(pending); err == nil && pki.KeyMatchesCertificate(key, pc[0]) {
					id.Certificate, id.Intermediates = pc[0], pc[1:]
				}
			}
		}
		if !pki.KeyMatchesCertificate(key, id.Certificate) {
			return nil, &FileError{RolePrivateKey, f.PrivateKey, fmt.Errorf("%w %s (certificate key %s %.16s, private key %s %.16s)",
				ErrKeyMismatch, f.Certificate,
				pki.DescribeKey(certKey(id.Certificate)), pki.PublicKeyFingerprint(certKey(id.Certificate)),
				pki.DescribeKey(key.Public()), pki.PublicKeyFingerprint(key.Public()))}
		}
	}
	if f.Intermediates != "" {
		chainData, err := ReadFile(RoleIntermediates, f.Intermediates)
		if err != nil {
			return nil, err
		}
		chain, err := pki.ParseCertificates(chainData)
		if err != nil {
			return nil, &FileError{RoleIntermediates, f.Intermediates, err}
		}
		id.Intermediates = chain
	}
	if !now.IsZero() {
		if err := pki.CheckLeaf(id.Certificate, now); err != nil {
			return nil, &FileError{RoleCertificate, f.Certificate, err}
		}
	}
	return id, nil
}

// LoadKey reads the private key file at path.
func LoadKey(path string, password PasswordFunc) (crypto.Signer, error) {
	data, err := ReadFile(RolePrivateKey, path)
	if err != nil {
		return nil, err
	}
	key, err := pki.ParsePrivateKey(data, passwordFor(password, path))
	if err != nil {
		return nil, &FileError{RolePrivateKey, path, err}
	}
	return key, nil
}

// LoadCertificate reads the leaf certificate of a PEM, DER or PKCS#12 file
// (the last needs its password).
func LoadCertificate(path string, password PasswordFunc) (*x509.Certificate, error) {
	data, err := ReadFile(RoleCertificate, path)
	if err != nil {
		return nil, err
	}
	if pki.IsPKCS12(data) {
		id, err := pki.ParsePKCS12(data, passwordFor(password, path))
		if err != nil {
			return nil, &FileError{RoleCertificate, path, err}
		}
		return id.Certificate, nil
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, &FileError{RoleCertificate, path, err}
	}
	return certs[0], nil
}

// Fingerprint identifies a certificate file's content cheaply, without a
// password and without parsing it: the SHA-256 of the first PEM CERTIFICATE
// block's DER (what `step certificate fingerprint` prints), or of the whole
// content when it is not PEM (a DER certificate, whose fingerprint this is
// too, or a PKCS#12 file). It runs on every cached credential-process call,
// so it stays this lean. path only names the file in errors.
func Fingerprint(path string, data []byte) (string, error) {
	der := data
	if bytes.Contains(data, []byte("-----BEGIN")) {
		der = nil
		for rest := data; der == nil; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				return "", &FileError{RoleCertificate, path, fmt.Errorf("%w: no PEM CERTIFICATE block", pki.ErrNotCertificate)}
			}
			if block.Type == "CERTIFICATE" {
				der = block.Bytes
			}
		}
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

func passwordFor(password PasswordFunc, path string) pki.PasswordFunc {
	if password == nil {
		return nil
	}
	return func() ([]byte, error) { return password(path) }
}

// maxFileSize bounds what is read of a key or certificate file: real ones
// are a few kilobytes.
const maxFileSize = 1 << 20

// ReadFile reads a certificate, key or chain file (role names it in
// errors). Pipes and process substitutions work; nothing larger than
// maxFileSize is read, whatever kind of file it is.
func ReadFile(role, path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, statError(role, path, err)
	}
	if info.IsDir() {
		return nil, &FileError{role, path, errors.New("is a directory, not a file")}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, statError(role, path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, &FileError{role, path, err}
	}
	if len(data) > maxFileSize {
		return nil, &FileError{role, path, fmt.Errorf("is over %d bytes; a %s file is a few kilobytes", maxFileSize, role)}
	}
	if len(data) == 0 {
		return nil, &FileError{role, path, errors.New("is empty")}
	}
	return data, nil
}

func statError(role, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &FileError{role, path, errors.New("no such file")}
	case errors.Is(err, fs.ErrPermission):
		return &FileError{role, path, errors.New("permission denied: the user running keyless cannot read it")}
	}
	return &FileError{role, path, err}
}

// readOwn reads a file only if it is this user's (or root's) and no one
// else can change it.
// It must be a regular file, not a link: a link another user planted
// (to /dev/stdin, say) would otherwise be followed and waited on.
func readOwn(path string) ([]byte, error) {
	pre, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !pre.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, pre.Mode().Type())
	}
	if err := secretfile.CheckOwned("file", path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(pre, info) {
		return nil, fmt.Errorf("%s changed while it was being read", path)
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// certKey is cert's public key for messages (an ML-DSA key too), nil when
// it cannot be read.
func certKey(cert *x509.Certificate) crypto.PublicKey {
	pub, _ := pki.CertificatePublicKey(cert)
	return pub
}
