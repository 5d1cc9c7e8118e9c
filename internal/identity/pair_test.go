package identity_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

func pairPEM(t *testing.T, ca *pkitest.CA, kind string) ([]byte, []byte) {
	key := pkitest.Key(t, kind)
	leaf := ca.Leaf(t, pkitest.LeafOptions{Key: key})
	keyPEM, err := pki.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pki.EncodeCertificates(leaf, ca.Cert), keyPEM
}

func loadSerial(t *testing.T, crt, key string) string {
	t.Helper()
	id, err := identity.Load(identity.Files{Certificate: crt, PrivateKey: key}, nil, time.Time{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return id.Certificate.SerialNumber.String()
}

// TestWritePairCrashBetweenRenames replays every state a crash can leave
// WritePair in when the key changes, and checks a reader always loads a
// matching pair and the next write or RecoverPair cleans up.
func TestWritePairCrashBetweenRenames(t *testing.T) {
	ca := pkitest.NewRoot(t, "pair-root").Intermediate(t, "pair-int")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
	oldCert, oldKey := pairPEM(t, ca, "p256#old")
	if err := identity.WritePair(crt, oldCert, key, oldKey); err != nil {
		t.Fatal(err)
	}
	oldSerial := loadSerial(t, crt, key)
	newCert, newKey := pairPEM(t, ca, "p256#new")
	pending := crt + identity.PendingSuffix

	// Crash after the pending certificate, before the key's rename: the
	// old pair is in place; the pending file is dropped.
	if err := atomicfile.WriteFile(pending, newCert, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := loadSerial(t, crt, key); got != oldSerial {
		t.Errorf("before the key's rename, Load gave %s, want the old %s", got, oldSerial)
	}
	if err := identity.RecoverPair(crt, key); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pending); !os.IsNotExist(err) {
		t.Errorf("a pending certificate for another key was kept: %v", err)
	}

	// Crash after the key's rename, before the certificate's: Load reads
	// the pending certificate, RecoverPair finishes the swap.
	if err := atomicfile.WriteFile(pending, newCert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(key, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	newSerial := loadSerial(t, crt, key)
	if newSerial == oldSerial {
		t.Fatal("Load gave the old certificate with the new key")
	}
	if err := identity.RecoverPair(crt, key); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pending); !os.IsNotExist(err) {
		t.Errorf("the pending certificate is still there: %v", err)
	}
	if got := loadSerial(t, crt, key); got != newSerial {
		t.Errorf("after recovery Load gave %s, want %s", got, newSerial)
	}
	for _, p := range []string{crt, key} {
		if info, _ := os.Stat(p); info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o", p, info.Mode().Perm())
		}
	}
}
