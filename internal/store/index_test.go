package store_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/keyless-dev/keyless/internal/store"
)

// Tests of the indexed lookups (format 2): CertificatesExpiring,
// CertificatesWithKey, RevokedKey, RevocationsUnexpired, and the
// migration of a format 1 file.

var (
	issuerOnce sync.Once
	issuerKey  ed25519.PrivateKey
	issuerCert *x509.Certificate
)

// newKey returns a fresh public key and its DER SubjectPublicKeyInfo.
func newKey(t testing.TB) (ed25519.PublicKey, []byte) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pub, spki
}

// keyedCert is testCert with a real DER certificate for pub, expiring at
// notAfter.
func keyedCert(t testing.TB, serial string, pub ed25519.PublicKey, notAfter time.Time) *store.Certificate {
	t.Helper()
	issuerOnce.Do(func() {
		_, issuerKey, _ = ed25519.GenerateKey(rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "index test CA"},
			NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(1000 * time.Hour), IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, issuerKey.Public(), issuerKey)
		if err == nil {
			issuerCert, err = x509.ParseCertificate(der)
		}
		if err != nil {
			panic(err)
		}
	})
	n, _ := new(big.Int).SetString(serial, 10)
	tmpl := &x509.Certificate{SerialNumber: n, Subject: pkix.Name{CommonName: "gitlab-runner"}, NotBefore: t0.Add(-time.Minute), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuerCert, pub, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	c := testCert(serial, t0)
	c.NotAfter, c.DER = notAfter, der
	return c
}

func put(t testing.TB, s store.Store, certs ...*store.Certificate) {
	t.Helper()
	for _, c := range certs {
		if err := s.PutCertificate(c); err != nil {
			t.Fatalf("PutCertificate %s: %v", c.Serial, err)
		}
	}
}

func revoke(t testing.TB, s store.Store, serial string, notAfter time.Time) {
	t.Helper()
	if err := s.Revoke(&store.Revocation{Serial: serial, ReasonCode: 1, RevokedAt: t0, NotAfter: notAfter, Via: "cli"}); err != nil {
		t.Fatalf("Revoke %s: %v", serial, err)
	}
}

func expiring(t testing.TB, s store.Store, from, to time.Time) []string {
	t.Helper()
	var out []string
	if err := s.CertificatesExpiring(from, to, func(c *store.Certificate) bool {
		out = append(out, c.Serial)
		return true
	}); err != nil {
		t.Fatalf("CertificatesExpiring: %v", err)
	}
	return out
}

func unexpiredRevocations(t testing.TB, s store.Store, at time.Time) []string {
	t.Helper()
	var out []string
	if err := s.RevocationsUnexpired(at, func(r *store.Revocation) bool {
		out = append(out, r.Serial)
		return true
	}); err != nil {
		t.Fatalf("RevocationsUnexpired: %v", err)
	}
	return out
}

func withKey(t testing.TB, s store.Store, spki []byte, after time.Time) []string {
	t.Helper()
	certs, err := s.CertificatesWithKey(spki, after)
	if err != nil {
		t.Fatalf("CertificatesWithKey: %v", err)
	}
	var out []string
	for _, c := range certs {
		out = append(out, c.Serial)
	}
	return out
}

// testExpiring: the bounds are inclusive, certificates just outside them
// are left out, the order is NotAfter then numeric serial, and fn can
// stop the walk.
func testExpiring(t *testing.T, s store.Store) {
	from, to := t0, t0.Add(24*time.Hour)
	at := func(serial string, notAfter time.Time) *store.Certificate {
		c := testCert(serial, t0)
		c.NotAfter = notAfter
		return c
	}
	put(t, s,
		at("1", from.Add(-time.Nanosecond)), // just expired: out
		at("2", from),                       // the lower bound: in
		at("3", to),                         // the upper bound: in
		at("4", to.Add(time.Nanosecond)),    // just after: out
		at("10", t0.Add(time.Hour)),         // in, after 2, before 3
		at("9", t0.Add(time.Hour)),          // same NotAfter: 9 before 10
	)
	if diff := cmp.Diff([]string{"2", "9", "10", "3"}, expiring(t, s, from, to)); diff != "" {
		t.Errorf("CertificatesExpiring(-want +got):\n%s", diff)
	}
	if got := expiring(t, s, to, from); len(got) != 0 {
		t.Errorf("CertificatesExpiring with to before from: %v", got)
	}
	var first []string
	if err := s.CertificatesExpiring(from, to, func(c *store.Certificate) bool {
		first = append(first, c.Serial)
		return false
	}); err != nil || !cmp.Equal(first, []string{"2"}) {
		t.Errorf("stopping early: %v, %v", first, err)
	}
	// The records come back whole.
	var got *store.Certificate
	s.CertificatesExpiring(t0.Add(time.Hour), t0.Add(time.Hour), func(c *store.Certificate) bool { got = c; return false })
	want := at("9", t0.Add(time.Hour))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

// testExpiringManyPages: a walk longer than the Bolt store's page, with
// certificates stored meanwhile.
func testExpiringManyPages(t *testing.T, s store.Store) {
	const n = 600
	for i := range n {
		c := testCert(strconv.Itoa(i+1), t0)
		c.NotAfter = t0.Add(time.Duration(n-i) * time.Minute)
		put(t, s, c)
	}
	var got []string
	extra := 0
	err := s.CertificatesExpiring(t0, t0.Add(time.Duration(n)*time.Minute), func(c *store.Certificate) bool {
		got = append(got, c.Serial)
		if extra < 3 { // stored during the walk, outside the range
			extra++
			c2 := testCert(strconv.Itoa(10_000+extra), t0)
			c2.NotAfter = t0.Add(-time.Hour)
			put(t, s, c2)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || got[0] != strconv.Itoa(n) || got[n-1] != "1" {
		t.Fatalf("listed %d, first %s, last %s; want %d from %d down to 1", len(got), got[0], got[len(got)-1], n, n)
	}
}

// testWithKey: a key's certificates are found, in NotAfter order, those
// expiring at or before after are not, and other keys' are not.
func testWithKey(t *testing.T, s store.Store) {
	a, spkiA := newKey(t)
	b, spkiB := newKey(t)
	_, spkiC := newKey(t)
	put(t, s,
		keyedCert(t, "1", a, t0.Add(2*time.Hour)),
		keyedCert(t, "2", a, t0.Add(time.Hour)),
		keyedCert(t, "3", a, t0),                   // expires exactly at after: out
		keyedCert(t, "4", b, t0.Add(3*time.Hour)),  // another key
		testCert("5", t0),                          // DER without a key
		keyedCert(t, "6", a, t0.Add(-time.Second)), // expired
	)
	if diff := cmp.Diff([]string{"2", "1"}, withKey(t, s, spkiA, t0)); diff != "" {
		t.Errorf("CertificatesWithKey(A, t0) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"6", "3", "2", "1"}, withKey(t, s, spkiA, t0.Add(-time.Hour))); diff != "" {
		t.Errorf("CertificatesWithKey(A, t0-1h) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"4"}, withKey(t, s, spkiB, t0)); diff != "" {
		t.Errorf("CertificatesWithKey(B) (-want +got):\n%s", diff)
	}
	if got := withKey(t, s, spkiC, t0.Add(-time.Hour)); len(got) != 0 {
		t.Errorf("CertificatesWithKey(unused key) = %v", got)
	}
}

// testRevokedKey: revoking a certificate revokes its key, not another's;
// a revocation of an unknown serial revokes no key.
func testRevokedKey(t *testing.T, s store.Store) {
	a, spkiA := newKey(t)
	b, spkiB := newKey(t)
	put(t, s, keyedCert(t, "1", a, t0.Add(time.Hour)), keyedCert(t, "2", a, t0.Add(2*time.Hour)), keyedCert(t, "3", b, t0.Add(time.Hour)))
	for _, spki := range [][]byte{spkiA, spkiB} {
		if got, err := s.RevokedKey(spki); err != nil || got != "" {
			t.Fatalf("RevokedKey before any revocation: %q, %v", got, err)
		}
	}
	revoke(t, s, "99", t0.Add(time.Hour)) // not stored: no key
	revoke(t, s, "2", t0.Add(2*time.Hour))
	if got, err := s.RevokedKey(spkiA); err != nil || got != "2" {
		t.Errorf("RevokedKey(A) = %q, %v; want 2", got, err)
	}
	if got, err := s.RevokedKey(spkiB); err != nil || got != "" {
		t.Errorf("RevokedKey(B) = %q, %v; want none", got, err)
	}
}

// testRevokedKeyAfterRevocation: a revocation recorded before its
// certificate (the CA may revoke a serial it only knows by number)
// revokes the key once the certificate is stored.
func testRevokedKeyAfterRevocation(t *testing.T, s store.Store) {
	a, spkiA := newKey(t)
	revoke(t, s, "7", t0.Add(time.Hour))
	if got, _ := s.RevokedKey(spkiA); got != "" {
		t.Fatalf("RevokedKey before the certificate is stored: %q", got)
	}
	put(t, s, keyedCert(t, "7", a, t0.Add(time.Hour)))
	if got, err := s.RevokedKey(spkiA); err != nil || got != "7" {
		t.Errorf("RevokedKey(A) = %q, %v; want 7", got, err)
	}
}

// testRevocationsUnexpired: what a CRL at t0 lists: no NotAfter (first),
// NotAfter at t0 or later; not NotAfter before t0.
func testRevocationsUnexpired(t *testing.T, s store.Store) {
	revoke(t, s, "1", t0.Add(-time.Nanosecond)) // expired: out
	revoke(t, s, "2", t0)                       // in
	revoke(t, s, "3", t0.Add(time.Hour))        // in
	revoke(t, s, "4", time.Time{})              // no NotAfter: in, first
	revoke(t, s, "5", t0.Add(-48*time.Hour))    // out
	revoke(t, s, "6", t0)                       // in, after 2
	if diff := cmp.Diff([]string{"4", "2", "6", "3"}, unexpiredRevocations(t, s, t0)); diff != "" {
		t.Errorf("RevocationsUnexpired(t0) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"4", "5", "1", "2", "6", "3"}, unexpiredRevocations(t, s, time.Time{})); diff != "" {
		t.Errorf("RevocationsUnexpired(zero) (-want +got):\n%s", diff)
	}
	var first []string
	if err := s.RevocationsUnexpired(t0, func(r *store.Revocation) bool { first = append(first, r.Serial); return false }); err != nil || len(first) != 1 {
		t.Errorf("stopping early: %v, %v", first, err)
	}
}

// testIndexedClosed: the indexed lookups fail on a closed store.
func testIndexedClosed(t *testing.T, s store.Store) {
	_, spki := newKey(t)
	s.Close()
	if err := s.CertificatesExpiring(t0, t0, func(*store.Certificate) bool { return true }); err == nil {
		t.Error("CertificatesExpiring on a closed store succeeded")
	}
	if _, err := s.CertificatesWithKey(spki, t0); err == nil {
		t.Error("CertificatesWithKey on a closed store succeeded")
	}
	if _, err := s.RevokedKey(spki); err == nil {
		t.Error("RevokedKey on a closed store succeeded")
	}
	if err := s.RevocationsUnexpired(t0, func(*store.Revocation) bool { return true }); err == nil {
		t.Error("RevocationsUnexpired on a closed store succeeded")
	}
}

// format1DB is a store written by keyless in format 1 (before the
// indexes), at commit b23624f, with a generator kept out of the tree:
//
//	certificate 1, key A, notAfter t0+24h, revoked (notAfter t0+24h)
//	certificate 2, key A, notAfter t0+48h, renewed from 1
//	certificate 3, key B, notAfter t0+1h
//	certificate 4, key C, notAfter t0-1h, revoked (notAfter t0-1h)
//	revocations of 99 (not stored, notAfter t0+10h) and 98 (no notAfter)
//	token id "format1-token", expiring t0+5m
const format1DB = "testdata/format1.db"

func copyFile(t *testing.T, from string) string {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	to := filepath.Join(t.TempDir(), "ca.db")
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return to
}

func formatOf(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket([]byte("meta")).Get([]byte("format")))
		return nil
	})
	return v
}

// keyOf reads a stored certificate's public key.
func keyOf(t *testing.T, s store.Store, serial string) []byte {
	t.Helper()
	c, err := s.Certificate(serial)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	return cert.RawSubjectPublicKeyInfo
}

// checkFormat1Answers checks the indexed lookups on the format 1 data.
func checkFormat1Answers(t *testing.T, what string, s store.Store) {
	t.Helper()
	spkiA, spkiB, spkiC := keyOf(t, s, "1"), keyOf(t, s, "3"), keyOf(t, s, "4")
	if !bytes.Equal(spkiA, keyOf(t, s, "2")) {
		t.Fatalf("%s: certificates 1 and 2 should share key A", what)
	}
	for _, c := range []struct {
		spki []byte
		want string
	}{{spkiA, "1"}, {spkiB, ""}, {spkiC, "4"}} {
		if got, err := s.RevokedKey(c.spki); err != nil || got != c.want {
			t.Errorf("%s: RevokedKey = %q, %v; want %q", what, got, err, c.want)
		}
	}
	if diff := cmp.Diff([]string{"1", "2"}, withKey(t, s, spkiA, t0)); diff != "" {
		t.Errorf("%s: CertificatesWithKey(A) (-want +got):\n%s", what, diff)
	}
	if diff := cmp.Diff([]string{"3", "1"}, expiring(t, s, t0, t0.Add(24*time.Hour))); diff != "" {
		t.Errorf("%s: CertificatesExpiring(t0, t0+24h) (-want +got):\n%s", what, diff)
	}
	if diff := cmp.Diff([]string{"98", "99", "1"}, unexpiredRevocations(t, s, t0)); diff != "" {
		t.Errorf("%s: RevocationsUnexpired(t0) (-want +got):\n%s", what, diff)
	}
	if diff := cmp.Diff([]string{"1", "2", "3", "4"}, serials(listAll(t, s))); diff != "" {
		t.Errorf("%s: Certificates (-want +got):\n%s", what, diff)
	}
}

// TestBoltMigratesFormat1 opens a file keyless wrote before the indexes:
// read-only, it answers by reading everything and leaves the file as it
// was; read-write, it builds the indexes once (format 2) and answers the
// same; opened again, nothing changes; and the old records and token ids
// are all still there.
func TestBoltMigratesFormat1(t *testing.T) {
	t.Parallel()
	path := copyFile(t, format1DB)
	if v := formatOf(t, path); v != "1" {
		t.Fatalf("test data has format %q, want 1", v)
	}

	ro := openBolt(t, path, store.BoltOptions{ReadOnly: true})
	checkFormat1Answers(t, "read-only format 1", ro)
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if v := formatOf(t, path); v != "1" {
		t.Fatalf("a read-only open changed the format to %q", v)
	}

	for i := range 2 {
		s := openBolt(t, path, store.BoltOptions{Now: func() time.Time { return t0 }})
		if v := formatOf2(t, s); v != strconv.Itoa(store.FormatVersion) {
			t.Fatalf("open %d: format %q after opening for writing, want %d", i, v, store.FormatVersion)
		}
		checkFormat1Answers(t, fmt.Sprintf("open %d", i), s)
		if err := store.CheckBolt(s); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if err := s.UseToken("format1-token", t0.Add(5*time.Minute)); !errors.Is(err, store.ErrTokenUsed) {
			t.Errorf("open %d: the old token id: %v, want ErrTokenUsed", i, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// Written to after the migration, the indexes keep up.
	s := openBolt(t, path, store.BoltOptions{Now: func() time.Time { return t0 }})
	revoke(t, s, "3", t0.Add(time.Hour))
	if got, err := s.RevokedKey(keyOf(t, s, "3")); err != nil || got != "3" {
		t.Errorf("RevokedKey(B) after revoking 3: %q, %v", got, err)
	}
}

func formatOf2(t *testing.T, s *store.Bolt) string {
	t.Helper()
	v, err := store.Format(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBoltMigrationIsAtomic: a format 1 file whose migration fails (a
// certificate record that does not decode) is refused with an error and
// left exactly as it was: format 1, no index buckets.
func TestBoltMigrationIsAtomic(t *testing.T) {
	t.Parallel()
	path := copyFile(t, format1DB)
	editBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("certificates")).Put([]byte("5"), []byte(`{"v":1,"serial":`))
	})
	if s, err := store.OpenBolt(path, store.BoltOptions{}); err == nil {
		s.Close()
		t.Fatal("OpenBolt migrated a file with a damaged record")
	}
	if v := formatOf(t, path); v != "1" {
		t.Errorf("format %q after the failed migration, want 1", v)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		for _, name := range []string{"certificates-by-expiry", "certificates-by-key", "revoked-keys", "revocations-by-expiry"} {
			if tx.Bucket([]byte(name)) != nil {
				t.Errorf("bucket %s left behind by the failed migration", name)
			}
		}
		return nil
	})
}

// TestBoltIndexesAreConsulted breaks each index of a format 2 file by
// hand and checks that the lookup it serves changes: the lookups use the
// indexes (and so cost what the answer costs), not a scan.
func TestBoltIndexesAreConsulted(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	s := openBolt(t, path, store.BoltOptions{Now: func() time.Time { return t0 }})
	a, spkiA := newKey(t)
	put(t, s, keyedCert(t, "1", a, t0.Add(time.Hour)))
	revoke(t, s, "1", t0.Add(time.Hour))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"certificates-by-expiry", "certificates-by-key", "revoked-keys", "revocations-by-expiry"} {
		editBolt(t, path, func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte(name)); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte(name))
			return err
		})
	}
	s = openBolt(t, path, store.BoltOptions{Now: func() time.Time { return t0 }})
	if got := expiring(t, s, t0, t0.Add(time.Hour)); len(got) != 0 {
		t.Errorf("CertificatesExpiring with its index emptied: %v", got)
	}
	if got := withKey(t, s, spkiA, t0); len(got) != 0 {
		t.Errorf("CertificatesWithKey with its index emptied: %v", got)
	}
	if got, _ := s.RevokedKey(spkiA); got != "" {
		t.Errorf("RevokedKey with its index emptied: %q", got)
	}
	if got := unexpiredRevocations(t, s, t0); len(got) != 0 {
		t.Errorf("RevocationsUnexpired with its index emptied: %v", got)
	}
}
