package identity

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

// PendingSuffix names the certificate file of a pair whose new key is
// already in place: WritePair writes CERT+PendingSuffix first, renames the
// new key over KEY, then renames CERT+PendingSuffix over CERT. A crash
// between the two renames leaves a new key beside the old certificate;
// readers (Load) and the next WritePair or RecoverPair use the pending
// certificate, so the pair seen is always a matching one.
const PendingSuffix = ".keyless-pending"

// lockSuffix names the lock file that serialises writers and recoverers
// of one pair.
const lockSuffix = ".keyless-lock"

// WritePair replaces a certificate file and, when keyPEM is not nil, its
// key file, so that a crash at any instant leaves the old pair or the new
// one for every reader that loads them with Load. Both files are written
// 0600 through a temporary file in their directory, fsynced, and renamed.
// The key is renamed first, and only if it changed.
func WritePair(certPath string, certPEM []byte, keyPath string, keyPEM []byte) error {
	unlock, err := lockForWrite(certPath, keyPath)
	if err != nil {
		return err
	}
	defer unlock()
	if keyPEM == nil {
		if err := atomicfile.WriteFile(certPath, certPEM, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", certPath, err)
		}
		return nil
	}
	pending := certPath + PendingSuffix
	if err := atomicfile.WriteFile(pending, certPEM, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", certPath, err)
	}
	writeStep(StepPending)
	if err := atomicfile.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		os.Remove(pending)
		return fmt.Errorf("writing %s: %w", keyPath, err)
	}
	writeStep(StepKey)
	if err := os.Rename(pending, certPath); err != nil {
		return fmt.Errorf("writing %s: %w (the new certificate is in %s and matches the new key; the next keyless renew or certificate finishes the swap)", certPath, err, pending)
	}
	writeStep(StepCertificate)
	return atomicfile.SyncDir(filepath.Dir(certPath))
}

// lockForWrite takes the pair's lock and finishes any write a crash
// interrupted: where every writer starts.
func lockForWrite(certPath, keyPath string) (unlock func(), err error) {
	unlock, err = lockPair(certPath)
	if err != nil {
		return nil, fmt.Errorf("writing %s: taking the pair's lock: %w", certPath, err)
	}
	if err := recoverPair(certPath, keyPath); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// CheckLock takes the pair's lock and lets go at once: a writer about
// to spend something it cannot get back (a one-time token) calls it
// first, so a lock it could never take is found before, not after. It
// waits while another keyless writer holds the lock.
func CheckLock(certPath string) error {
	// Another user's pending certificate (planted in a directory others
	// can write) would stop the write after the token is spent.
	pending := certPath + PendingSuffix
	if info, err := os.Lstat(pending); err == nil {
		err := secretfile.CheckOwned("pending certificate", pending)
		if err == nil && info.Mode()&os.ModeSymlink != 0 {
			err = fmt.Errorf("pending certificate %s is a symbolic link", pending)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w; keyless cannot replace it: remove it, and keep the certificate and key in a directory only you can write", certPath, err)
		}
	}
	unlock, err := lockPair(certPath)
	if err != nil {
		return fmt.Errorf("writing %s: taking the pair's lock: %w", certPath, err)
	}
	unlock()
	return nil
}

// ErrPairChanged is a renewed certificate that was not written because
// the pair on disk is no longer the one it renews: another writer (a
// keyless certificate --force, another renew) replaced it meanwhile.
var ErrPairChanged = errors.New("the certificate and key changed on disk while the certificate was being renewed")

// ReplaceCertificate writes a renewed certificate over certPath, keeping
// the key, as WritePair(certPath, certPEM, keyPath, nil) does, but only
// if, under the pair's lock, the certificate in place is still renewed
// (the one the new certificate renews) and the new certificate belongs
// to the key at keyPath; otherwise it returns ErrPairChanged and leaves
// the pair as it is. A renewal talks to the CA between reading the pair
// and writing it; without this check, a re-enrollment in that time lost
// its new certificate and left the renewed one beside the new key.
func ReplaceCertificate(certPath string, certPEM []byte, keyPath string, renewed *x509.Certificate) error {
	unlock, err := lockForWrite(certPath, keyPath)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := Load(Files{Certificate: certPath, PrivateKey: keyPath}, nil, time.Time{})
	if err != nil {
		return fmt.Errorf("writing %s: %w: %w", certPath, ErrPairChanged, err)
	}
	if !bytes.Equal(cur.Certificate.Raw, renewed.Raw) {
		return fmt.Errorf("writing %s: %w (it now holds serial %s, not %s)", certPath, ErrPairChanged, cur.Certificate.SerialNumber, renewed.SerialNumber)
	}
	certs, err := pki.ParseCertificates(certPEM)
	if err != nil {
		return err
	}
	if !pki.KeyMatchesCertificate(cur.Key, certs[0]) {
		return fmt.Errorf("writing %s: %w (the renewed certificate is not for the key in %s)", certPath, ErrPairChanged, keyPath)
	}
	if err := atomicfile.WriteFile(certPath, certPEM, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", certPath, err)
	}
	return nil
}

// The points of a WritePair that changes the key at which a crash leaves
// a distinct state on disk, in order. Only after StepKey and before
// StepCertificate do the two files disagree: the new key is in place,
// the old certificate still at CERT, the new one at CERT+PendingSuffix.
// Load and RecoverPair take the pending certificate then; a program that
// reads the two files itself (openssl, tls.LoadX509KeyPair) sees a
// mismatch until the certificate's rename, microseconds later, or, after
// a crash there, until keyless next writes or recovers the pair.
const (
	StepPending     = "pending certificate written"
	StepKey         = "new key in place"
	StepCertificate = "new certificate in place"
)

// writeStep is called at each step; tests replace it to see each state.
var writeStep = func(string) {}

// RecoverPair finishes a WritePair that a crash interrupted: a pending
// certificate that matches the key in place is renamed over the
// certificate; one that does not (the crash came before the key's rename)
// is removed; temporary files that killed writers of the pair left
// behind (one may hold a whole key) are removed.
func RecoverPair(certPath, keyPath string) error {
	if !interrupted(certPath, keyPath) {
		// Nothing to finish: no lock, so a pair in a directory this user
		// cannot write still loads.
		return nil
	}
	unlock, err := lockPair(certPath)
	if err != nil {
		return fmt.Errorf("locking %s: %w", certPath, err)
	}
	defer unlock()
	return recoverPair(certPath, keyPath)
}

// interrupted reports whether a write of the pair left anything behind:
// a pending certificate or a temporary file.
func interrupted(certPath, keyPath string) bool {
	if _, err := os.Lstat(certPath + PendingSuffix); err == nil {
		return true
	}
	for _, p := range []string{certPath, keyPath, certPath + PendingSuffix} {
		entries, err := os.ReadDir(filepath.Dir(p))
		if err != nil {
			continue
		}
		prefix := atomicfile.TempPrefix + filepath.Base(p) + "-"
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				return true
			}
		}
	}
	return false
}

func recoverPair(certPath, keyPath string) error {
	// What killed writers left: temporary copies of the certificate, the
	// key (a whole private key) or the pending certificate.
	for _, p := range []string{certPath, keyPath, certPath + PendingSuffix} {
		atomicfile.Cleanup(p)
	}
	pending := certPath + PendingSuffix
	if _, err := os.Lstat(pending); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Never another user's: it could hold a certificate for this key
	// from any CA, which would replace the real one.
	data, err := readOwn(pending)
	if err != nil {
		return fmt.Errorf("reading %s: %w", pending, err)
	}
	if pendingMatches(data, keyPath) {
		if err := os.Rename(pending, certPath); err != nil {
			return fmt.Errorf("finishing an interrupted write of %s: %w", certPath, err)
		}
		return atomicfile.SyncDir(filepath.Dir(certPath))
	}
	if err := os.Remove(pending); err != nil {
		return fmt.Errorf("removing %s from an interrupted write: %w", pending, err)
	}
	return nil
}

// pendingMatches reports whether a pending certificate belongs to the
// (unencrypted) key at keyPath.
func pendingMatches(certPEM []byte, keyPath string) bool {
	certs, err := pki.ParseCertificates(certPEM)
	if err != nil {
		return false
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return false
	}
	key, err := pki.ParsePrivateKey(keyPEM, nil)
	return err == nil && pki.KeyMatchesCertificate(key, certs[0])
}

// LoadPair reads the certificate (with any intermediates after it) and
// the unencrypted key a pair of files holds, as a TLS client certificate,
// after finishing any write a crash interrupted. It does not check the
// certificate's validity: renewing and revoking work on expired ones.
func LoadPair(certPath, keyPath string) (tls.Certificate, error) {
	if err := RecoverPair(certPath, keyPath); err != nil {
		return tls.Certificate{}, err
	}
	id, err := Load(Files{Certificate: certPath, PrivateKey: keyPath}, nil, time.Time{})
	if err != nil {
		return tls.Certificate{}, err
	}
	chain := [][]byte{id.Certificate.Raw}
	for _, c := range id.Intermediates {
		chain = append(chain, c.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: id.Key, Leaf: id.Certificate}, nil
}
