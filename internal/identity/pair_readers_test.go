//go:build unix

package identity_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// reader is another program's view of a pair: does the certificate file
// go with the key file?
type reader struct {
	name    string
	matches func(t *testing.T, crt, key string) bool
}

func readers(t *testing.T) []reader {
	openssl := testkit.LookPath(t, "openssl", "apt-get install openssl")
	pub := func(t *testing.T, args ...string) []byte {
		t.Helper()
		out, err := exec.Command(openssl, args...).Output()
		if err != nil {
			t.Fatalf("openssl %v: %v", args, err)
		}
		return out
	}
	return []reader{
		{"openssl", func(t *testing.T, crt, key string) bool {
			return bytes.Equal(pub(t, "x509", "-noout", "-pubkey", "-in", crt), pub(t, "pkey", "-pubout", "-in", key))
		}},
		{"tls.LoadX509KeyPair", func(t *testing.T, crt, key string) bool {
			_, err := tls.LoadX509KeyPair(crt, key)
			return err == nil
		}},
		{"keyless (identity.Load)", func(t *testing.T, crt, key string) bool {
			_, err := identity.Load(identity.Files{Certificate: crt, PrivateKey: key}, nil, time.Time{})
			return err == nil
		}},
	}
}

// snapshot copies the pair's directory as a crash at this instant would
// leave it on disk.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// TestPairAtEveryCrashPoint stops a key-changing WritePair at each of its
// steps and shows what every reader finds there, and after RecoverPair.
// It is the truth README and docs/renewal.md tell: only between the key's
// rename and the certificate's do other programs see a new key beside
// the old certificate; keyless itself never does, and recovery (any
// keyless certificate or renew run) ends that state.
func TestPairAtEveryCrashPoint(t *testing.T) {
	ca := pkitest.NewRoot(t, "crash-root").Intermediate(t, "crash-int")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
	oldCert, oldKey := pairPEM(t, ca, "p256#crash-old")
	if err := identity.WritePair(crt, oldCert, key, oldKey); err != nil {
		t.Fatal(err)
	}
	newCert, newKey := pairPEM(t, ca, "p256#crash-new")

	snaps := map[string]string{}
	restore := identity.SetWriteStep(func(step string) { snaps[step] = snapshot(t, dir) })
	if err := identity.WritePair(crt, newCert, key, newKey); err != nil {
		t.Fatal(err)
	}
	restore()

	rs := readers(t)
	for _, tc := range []struct {
		step         string
		othersMatch  bool // what openssl and tls.LoadX509KeyPair see
		keylessMatch bool
	}{
		{identity.StepPending, true, true},
		{identity.StepKey, false, true},
		{identity.StepCertificate, true, true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			d, ok := snaps[tc.step]
			if !ok {
				t.Fatalf("WritePair never reached %q", tc.step)
			}
			c, k := filepath.Join(d, "runner.crt"), filepath.Join(d, "runner.key")
			for _, r := range rs[:2] {
				if got := r.matches(t, c, k); got != tc.othersMatch {
					t.Errorf("%s: pair matches = %v, want %v", r.name, got, tc.othersMatch)
				}
			}
			if got := rs[2].matches(t, c, k); got != tc.keylessMatch {
				t.Errorf("%s: pair matches = %v, want %v", rs[2].name, got, tc.keylessMatch)
			}
			// A writer killed inside its key's write also leaves the
			// temporary copy, a whole private key.
			if err := os.WriteFile(filepath.Join(d, ".tmp-runner.key-4242"), newKey, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := identity.RecoverPair(c, k); err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if !r.matches(t, c, k) {
					t.Errorf("after RecoverPair, %s sees a mismatched pair", r.name)
				}
			}
			if left := testkit.DirNames(t, d); len(left) != 2 {
				t.Errorf("after RecoverPair the directory holds %v, want the two files", left)
			}
		})
	}
}

// TestWritePairLeavesOnlyThePair: concurrent writers of one pair, each
// writing a whole new pair, serialise on the pair's lock; when they are
// done the directory holds the two files, a matching pair, and no lock
// file or temporary copy.
func TestWritePairLeavesOnlyThePair(t *testing.T) {
	ca := pkitest.NewRoot(t, "lock-root").Intermediate(t, "lock-int")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
	type pair struct{ cert, key []byte }
	var pairs []pair
	for _, k := range []string{"p256#lock-a", "p256#lock-b", "p384#lock-c"} {
		c, kp := pairPEM(t, ca, k)
		pairs = append(pairs, pair{c, kp})
	}
	errs := make(chan error, 8*10)
	done := make(chan struct{})
	for w := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 10 {
				p := pairs[(w+i)%len(pairs)]
				errs <- identity.WritePair(crt, p.cert, key, p.key)
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tls.LoadX509KeyPair(crt, key); err != nil {
		t.Fatalf("the pair after concurrent writers: %v", err)
	}
	if got := testkit.DirNames(t, dir); len(got) != 2 {
		t.Fatalf("the directory holds %v, want only the pair", got)
	}
}

// TestReplaceCertificateRefusesAChangedPair: a renewal that read pair A,
// and meanwhile saw A replaced by a re-enrolled pair B, must not write
// A's renewed certificate beside B's key (the attack review's race of
// renew against certificate --force).
func TestReplaceCertificateRefusesAChangedPair(t *testing.T) {
	ca := pkitest.NewRoot(t, "race-root").Intermediate(t, "race-int")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
	aKey := pkitest.Key(t, "p256#race-a")
	aLeaf := ca.Leaf(t, pkitest.LeafOptions{Key: aKey})
	aKeyPEM, err := pki.EncodePrivateKey(aKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.WritePair(crt, pki.EncodeCertificates(aLeaf), key, aKeyPEM); err != nil {
		t.Fatal(err)
	}
	renewedA := pki.EncodeCertificates(ca.Leaf(t, pkitest.LeafOptions{Key: aKey}))

	// Unchanged: the renewed certificate goes in.
	if err := identity.ReplaceCertificate(crt, renewedA, key, aLeaf); err != nil {
		t.Fatalf("an unchanged pair: %v", err)
	}
	current := loadLeaf(t, crt, key)

	// Re-enrolled meanwhile: refused, and B stays.
	bCert, bKey := pairPEM(t, ca, "p384#race-b")
	if err := identity.WritePair(crt, bCert, key, bKey); err != nil {
		t.Fatal(err)
	}
	bLeaf := loadLeaf(t, crt, key)
	if err := identity.ReplaceCertificate(crt, renewedA, key, current); !errors.Is(err, identity.ErrPairChanged) {
		t.Fatalf("a pair re-enrolled meanwhile: %v, want ErrPairChanged", err)
	}
	if got := loadLeaf(t, crt, key); !got.Equal(bLeaf) {
		t.Fatal("the re-enrolled certificate was replaced")
	}
	// A renewed certificate for another key than the one in place.
	if err := identity.ReplaceCertificate(crt, renewedA, key, bLeaf); !errors.Is(err, identity.ErrPairChanged) {
		t.Fatalf("a renewed certificate for another key: %v", err)
	}
	if _, err := tls.LoadX509KeyPair(crt, key); err != nil {
		t.Fatalf("the pair after the refusals: %v", err)
	}
}

func loadLeaf(t *testing.T, crt, key string) *x509.Certificate {
	t.Helper()
	id, err := identity.Load(identity.Files{Certificate: crt, PrivateKey: key}, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return id.Certificate
}

// TestLockFileOfAnotherUser: in a directory others can write, another
// user's lock file (which they could hold forever) is refused at once,
// and CheckLock says so before anything is spent.
func TestLockFileOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the lock file to another user")
	}
	dir := t.TempDir()
	crt := filepath.Join(dir, "runner.crt")
	lock := crt + ".keyless-lock"
	if err := os.WriteFile(lock, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(lock, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := identity.CheckLock(crt); err == nil || !strings.Contains(err.Error(), "made by uid 65534") {
		t.Fatalf("another user's lock file: %v", err)
	}
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(lock, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := identity.CheckLock(crt); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a named pipe as the lock file: %v", err)
	}
}

// TestPendingCertificateOfAnotherUser: in a directory others can write
// (sticky, as /tmp), another user planted CERT.keyless-pending (the second
// attack review), here a certificate for this pair's new key from a CA of
// their own, with the pair caught between its renames. Load does not take
// it, RecoverPair does not rename it over the certificate, and CheckLock
// refuses before a one-time token is spent.
func TestPendingCertificateOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the pending certificate to another user")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
	real := pkitest.NewRoot(t, "real-root").Intermediate(t, "real-int")
	oldCert, oldKey := pairPEM(t, real, "p256#old")
	if err := identity.WritePair(crt, oldCert, key, oldKey); err != nil {
		t.Fatal(err)
	}
	// The new key is in place; its certificate is not.
	evil := pkitest.NewRoot(t, "evil-root").Intermediate(t, "evil-int")
	planted, newKey := pairPEM(t, evil, "p256#new")
	if err := os.WriteFile(key, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	pending := crt + identity.PendingSuffix
	if err := os.WriteFile(pending, planted, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(pending, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.Load(identity.Files{Certificate: crt, PrivateKey: key}, nil, time.Time{}); !errors.Is(err, identity.ErrKeyMismatch) {
		t.Errorf("Load with another user's pending certificate: %v, want a key mismatch", err)
	}
	if err := identity.RecoverPair(crt, key); err == nil || !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("RecoverPair with another user's pending certificate: %v", err)
	}
	if got, _ := os.ReadFile(crt); !bytes.Equal(got, oldCert) {
		t.Error("another user's pending certificate replaced the certificate")
	}
	if err := identity.CheckLock(crt); err == nil || !strings.Contains(err.Error(), "keyless cannot replace it: remove it") {
		t.Errorf("CheckLock with another user's pending certificate: %v", err)
	}
}

// TestPendingLinkOfAnotherUser: a pending certificate that is another
// user's link to /dev/stdin made Load wait on standard input (the third
// attack review); a link is never read as the pending certificate.
func TestPendingLinkOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the link to another user")
	}
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "runner.crt"), filepath.Join(dir, "runner.key")
	ca := pkitest.NewRoot(t, "link-root").Intermediate(t, "link-int")
	oldCert, oldKey := pairPEM(t, ca, "p256#old")
	if err := identity.WritePair(crt, oldCert, key, oldKey); err != nil {
		t.Fatal(err)
	}
	_, newKey := pairPEM(t, ca, "p256#new")
	if err := os.WriteFile(key, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	// Standard input that never ends: a pipe whose writer stays open.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pending := crt + identity.PendingSuffix
	if err := os.Symlink(fmt.Sprintf("/proc/self/fd/%d", r.Fd()), pending); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(pending, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.Load(identity.Files{Certificate: crt, PrivateKey: key}, nil, time.Time{}); !errors.Is(err, identity.ErrKeyMismatch) {
		t.Errorf("Load: %v, want a key mismatch", err)
	}
	if err := identity.RecoverPair(crt, key); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("RecoverPair: %v", err)
	}
}
