package store_test

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/keyless-dev/keyless/internal/store"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// t0 is an arbitrary fixed instant the tests count from.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// implementations opens a fresh store of each kind, closed at the end of
// the test.
var implementations = []struct {
	name string
	open func(t testing.TB) store.Store
}{
	{"bolt", func(t testing.TB) store.Store {
		return openBolt(t, dbPath(t), store.BoltOptions{Now: func() time.Time { return t0 }})
	}},
	{"memory", func(t testing.TB) store.Store {
		s := store.NewMemory()
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "ca.db") }

func openBolt(t testing.TB, path string, opts store.BoltOptions) *store.Bolt {
	t.Helper()
	s, err := store.OpenBolt(path, opts)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testCert(serial string, issuedAt time.Time) *store.Certificate {
	return &store.Certificate{
		Serial:      serial,
		Subject:     "host-" + serial + ".example.com",
		SANs:        []string{"host-" + serial + ".example.com", "10.0.0.1", "spiffe://example.com/host"},
		NotBefore:   issuedAt.Add(-time.Minute),
		NotAfter:    issuedAt.Add(24 * time.Hour),
		Provisioner: "runners",
		IssuedAt:    issuedAt,
		DER:         []byte("not really DER but bytes " + serial),
	}
}

func serials(certs []*store.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Serial)
	}
	return out
}

func listAll(t *testing.T, s store.Store) []*store.Certificate {
	t.Helper()
	var out []*store.Certificate
	if err := s.Certificates(func(c *store.Certificate) bool {
		out = append(out, c)
		return true
	}); err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	return out
}

// parallel runs fn(0) … fn(n-1) in n goroutines and returns their errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errs
}

// TestContract checks the Store contracts against every implementation.
func TestContract(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			tests := []struct {
				name string
				fn   func(t *testing.T, s store.Store)
			}{
				{"PutGet", testPutGet},
				{"Exists", testExists},
				{"NotFound", testNotFound},
				{"InvalidInput", testInvalidInput},
				{"Order", testOrder},
				{"OrderManyPages", testOrderManyPages},
				{"TokenUsedTwice", testTokenUsedTwice},
				{"IssueCertificate", testIssueCertificate},
				{"Concurrency", testConcurrency},
				{"RevokeIdempotent", testRevokeIdempotent},
				{"RevocationsOrder", testRevocationsOrder},
				{"Closed", testClosed},
				{"Expiring", testExpiring},
				{"ExpiringManyPages", testExpiringManyPages},
				{"WithKey", testWithKey},
				{"RevokedKey", testRevokedKey},
				{"RevokedKeyAfterRevocation", testRevokedKeyAfterRevocation},
				{"RevocationsUnexpired", testRevocationsUnexpired},
				{"IndexedClosed", testIndexedClosed},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					tt.fn(t, impl.open(t))
				})
			}
		})
	}
}

func testPutGet(t *testing.T, s store.Store) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	in := testCert("1234567890123456789012345678901234567890", time.Date(2026, 3, 1, 13, 0, 0, 123456789, paris))
	in.RenewedFrom = "42"
	in.DER = []byte{0x30, 0x82, 0x00, 0xff}
	if err := s.PutCertificate(in); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	want := *in
	want.SANs = append([]string(nil), in.SANs...)
	want.DER = append([]byte(nil), in.DER...)
	// The store copies what it is given.
	in.SANs[0] = "changed"
	in.DER[0] = 0

	got, err := s.Certificate(in.Serial)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Certificate (-want +got):\n%s", diff)
	}
	for name, tm := range map[string]time.Time{"NotBefore": got.NotBefore, "NotAfter": got.NotAfter, "IssuedAt": got.IssuedAt} {
		if tm.Location() != time.UTC {
			t.Errorf("%s is in %v, want UTC", name, tm.Location())
		}
	}

	// What the caller does with a returned value is its own business.
	got.SANs[0] = "changed"
	again, err := s.Certificate(in.Serial)
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if diff := cmp.Diff(&want, again); diff != "" {
		t.Errorf("Certificate after changing the returned value (-want +got):\n%s", diff)
	}

	// Empty slices come back nil.
	bare := &store.Certificate{Serial: "7", SANs: []string{}, DER: []byte{}, IssuedAt: t0}
	if err := s.PutCertificate(bare); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	got, err = s.Certificate("7")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if diff := cmp.Diff(&store.Certificate{Serial: "7", IssuedAt: t0}, got); diff != "" {
		t.Errorf("Certificate (-want +got):\n%s", diff)
	}
	if got.SANs != nil || got.DER != nil {
		t.Errorf("empty slices came back as SANs %#v, DER %#v; want nil", got.SANs, got.DER)
	}
}

func testExists(t *testing.T, s store.Store) {
	first := testCert("10", t0)
	if err := s.PutCertificate(first); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	second := testCert("10", t0.Add(time.Hour))
	second.Subject = "someone else"
	if err := s.PutCertificate(second); !errors.Is(err, store.ErrExists) {
		t.Fatalf("PutCertificate of a stored serial: got %v, want ErrExists", err)
	}
	got, err := s.Certificate("10")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("the failed put changed the record (-want +got):\n%s", diff)
	}
	if got := serials(listAll(t, s)); !cmp.Equal(got, []string{"10"}) {
		t.Errorf("Certificates = %v, want [10]", got)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	if err := s.PutCertificate(testCert("1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Certificate("2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Certificate of an unknown serial: got %v, want ErrNotFound", err)
	}
	if _, err := s.Revocation("1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Revocation of an unrevoked serial: got %v, want ErrNotFound", err)
	}
	revs, err := s.Revocations()
	if err != nil || len(revs) != 0 {
		t.Errorf("Revocations of an empty store = %v, %v; want none, nil", revs, err)
	}
}

func testInvalidInput(t *testing.T, s store.Store) {
	cert := func(serial string) *store.Certificate { return testCert(serial, t0) }
	rev := func(serial string) *store.Revocation {
		return &store.Revocation{Serial: serial, RevokedAt: t0}
	}
	long := strings.Repeat("1", store.MaxKeyLen+1)
	tests := []struct {
		name string
		call func() error
	}{
		{"UseToken empty id", func() error { return s.UseToken("", t0) }},
		{"UseToken long id", func() error { return s.UseToken(long, t0) }},
		{"UseToken zero expiry", func() error { return s.UseToken("id", time.Time{}) }},
		{"PutCertificate nil", func() error { return s.PutCertificate(nil) }},
		{"PutCertificate empty serial", func() error { return s.PutCertificate(cert("")) }},
		{"PutCertificate leading zero", func() error { return s.PutCertificate(cert("012")) }},
		{"PutCertificate zero", func() error { return s.PutCertificate(cert("0")) }},
		{"PutCertificate negative", func() error { return s.PutCertificate(cert("-5")) }},
		{"PutCertificate hex", func() error { return s.PutCertificate(cert("1f")) }},
		{"PutCertificate long", func() error { return s.PutCertificate(cert(long)) }},
		{"PutCertificate zero IssuedAt", func() error { return s.PutCertificate(&store.Certificate{Serial: "5"}) }},
		{"Certificate empty serial", func() error { _, err := s.Certificate(""); return err }},
		{"Certificate hex", func() error { _, err := s.Certificate("0x1f"); return err }},
		{"Revoke nil", func() error { return s.Revoke(nil) }},
		{"Revoke empty serial", func() error { return s.Revoke(rev("")) }},
		{"Revoke zero RevokedAt", func() error { return s.Revoke(&store.Revocation{Serial: "5"}) }},
		{"Revocation empty serial", func() error { _, err := s.Revocation(""); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("got nil, want an error")
			}
			for _, sentinel := range []error{store.ErrNotFound, store.ErrExists, store.ErrTokenUsed, store.ErrLocked} {
				if errors.Is(err, sentinel) {
					t.Errorf("got %v, which wraps %v; want a plain error", err, sentinel)
				}
			}
		})
	}
	// Nothing was stored.
	if got := listAll(t, s); len(got) != 0 {
		t.Errorf("Certificates = %v, want none", serials(got))
	}
}

func testOrder(t *testing.T, s store.Store) {
	// Put in an order unlike the listing order; equal IssuedAt values
	// list in numeric serial order, not string order.
	puts := []struct {
		serial string
		at     time.Time
	}{
		{"5", t0.Add(2 * time.Hour)},
		{"100", t0},
		{"9", t0},
		{"3", t0.Add(-time.Hour)},
		{"10", t0},
		{"4", t0.Add(time.Nanosecond)},
		{"1", time.Date(1965, 1, 1, 0, 0, 0, 0, time.UTC)}, // before 1970 still sorts first
	}
	for _, p := range puts {
		if err := s.PutCertificate(testCert(p.serial, p.at)); err != nil {
			t.Fatalf("PutCertificate(%s): %v", p.serial, err)
		}
	}
	want := []string{"1", "3", "9", "10", "100", "4", "5"}
	if diff := cmp.Diff(want, serials(listAll(t, s))); diff != "" {
		t.Errorf("Certificates order (-want +got):\n%s", diff)
	}

	for _, stopAfter := range []int{1, 3} {
		var got []string
		err := s.Certificates(func(c *store.Certificate) bool {
			got = append(got, c.Serial)
			return len(got) < stopAfter
		})
		if err != nil {
			t.Fatalf("Certificates: %v", err)
		}
		if diff := cmp.Diff(want[:stopAfter], got); diff != "" {
			t.Errorf("Certificates stopping after %d (-want +got):\n%s", stopAfter, diff)
		}
	}
}

// testOrderManyPages lists more certificates than Bolt reads in one
// transaction, and calls the store from inside fn.
func testOrderManyPages(t *testing.T, s store.Store) {
	const n = 700
	errs := parallel(16, func(g int) error {
		for i := g; i < n; i += 16 {
			// Serial i+1 is issued at t0 + (n-i) seconds: reverse order.
			if err := s.PutCertificate(testCert(strconv.Itoa(i+1), t0.Add(time.Duration(n-i)*time.Second))); err != nil {
				return err
			}
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	var got []string
	err := s.Certificates(func(c *store.Certificate) bool {
		if _, err := s.Certificate(c.Serial); err != nil {
			t.Errorf("Certificate(%s) inside Certificates: %v", c.Serial, err)
		}
		got = append(got, c.Serial)
		return true
	})
	if err != nil {
		t.Fatalf("Certificates: %v", err)
	}
	var want []string
	for i := n; i >= 1; i-- {
		want = append(want, strconv.Itoa(i))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Certificates order (-want +got):\n%s", diff)
	}

	got = nil
	s.Certificates(func(c *store.Certificate) bool {
		got = append(got, c.Serial)
		return len(got) < 300
	})
	if diff := cmp.Diff(want[:300], got); diff != "" {
		t.Errorf("Certificates stopping after 300 (-want +got):\n%s", diff)
	}
}

func testTokenUsedTwice(t *testing.T, s store.Store) {
	exp := t0.Add(5 * time.Minute)
	if err := s.UseToken("a", exp); err != nil {
		t.Fatalf("first UseToken: %v", err)
	}
	if err := s.UseToken("b", exp); err != nil {
		t.Fatalf("UseToken of another id: %v", err)
	}
	for _, expires := range []time.Time{exp, exp.Add(time.Hour), exp.Add(-time.Hour)} {
		if err := s.UseToken("a", expires); !errors.Is(err, store.ErrTokenUsed) {
			t.Errorf("UseToken again with expiry %v: got %v, want ErrTokenUsed", expires, err)
		}
	}
}

// testIssueCertificate: token and certificate are stored together or not
// at all, and racing issues with one token store one certificate.
func testIssueCertificate(t *testing.T, s store.Store) {
	exp := t0.Add(5 * time.Minute)
	if err := s.IssueCertificate(testCert("1", t0), "tok-1", exp); err != nil {
		t.Fatalf("IssueCertificate: %v", err)
	}
	if _, err := s.Certificate("1"); err != nil {
		t.Errorf("certificate not stored: %v", err)
	}
	if err := s.UseToken("tok-1", exp); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("token not recorded: UseToken gave %v", err)
	}
	// A spent token stores nothing.
	if err := s.IssueCertificate(testCert("2", t0), "tok-1", exp); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("spent token: got %v, want ErrTokenUsed", err)
	}
	if _, err := s.Certificate("2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused issue stored its certificate: %v", err)
	}
	// A stored serial spends no token.
	if err := s.IssueCertificate(testCert("1", t0), "tok-2", exp); !errors.Is(err, store.ErrExists) {
		t.Errorf("stored serial: got %v, want ErrExists", err)
	}
	if err := s.UseToken("tok-2", exp); err != nil {
		t.Errorf("a refused issue spent its token: %v", err)
	}
	errs := parallel(50, func(i int) error {
		return s.IssueCertificate(testCert(fmt.Sprint(100+i), t0), "race", exp)
	})
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrTokenUsed):
			t.Errorf("racing issue: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of 50 racing issues with one token succeeded, want 1", ok)
	}
	if n := len(listAll(t, s)); n != 2 {
		t.Errorf("%d certificates stored, want 2", n)
	}
}

func testConcurrency(t *testing.T, s store.Store) {
	const n = 100
	exp := t0.Add(5 * time.Minute)
	errs := parallel(n, func(i int) error {
		serial := strconv.Itoa(i + 1)
		if err := s.UseToken("token-"+serial, exp); err != nil {
			return fmt.Errorf("UseToken: %w", err)
		}
		return s.PutCertificate(testCert(serial, t0))
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if got := len(listAll(t, s)); got != n {
		t.Errorf("Certificates lists %d certificates, want %d", got, n)
	}
	for i := range n {
		if err := s.UseToken("token-"+strconv.Itoa(i+1), exp); !errors.Is(err, store.ErrTokenUsed) {
			t.Errorf("UseToken of token-%d again: got %v, want ErrTokenUsed", i+1, err)
		}
	}

	// Racing on one token id, or on one serial: exactly one wins.
	races := []struct {
		name     string
		sentinel error
		call     func(i int) error
	}{
		{"same token", store.ErrTokenUsed, func(int) error { return s.UseToken("contested", exp) }},
		{"same serial", store.ErrExists, func(i int) error {
			c := testCert("999999", t0)
			c.Subject = strconv.Itoa(i)
			return s.PutCertificate(c)
		}},
	}
	for _, race := range races {
		var wins, losses int
		for i, err := range parallel(n, race.call) {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, race.sentinel):
				losses++
			default:
				t.Errorf("%s: goroutine %d: %v", race.name, i, err)
			}
		}
		if wins != 1 || losses != n-1 {
			t.Errorf("%s: %d calls returned nil and %d %v; want 1 and %d", race.name, wins, losses, race.sentinel, n-1)
		}
	}
}

func testRevokeIdempotent(t *testing.T, s store.Store) {
	first := &store.Revocation{
		Serial:     "77",
		ReasonCode: 1,
		Reason:     "key compromise",
		RevokedAt:  t0,
		NotAfter:   t0.Add(24 * time.Hour),
		Via:        "token:runners",
	}
	// The certificate need not be stored.
	if err := s.Revoke(first); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	again := &store.Revocation{Serial: "77", ReasonCode: 4, Reason: "superseded", RevokedAt: t0.Add(time.Hour), Via: "cli"}
	if err := s.Revoke(again); err != nil {
		t.Fatalf("Revoke of a revoked serial: %v", err)
	}
	got, err := s.Revocation("77")
	if err != nil {
		t.Fatalf("Revocation: %v", err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("Revocation (-want first record +got):\n%s", diff)
	}

	// Concurrent revocations of one serial: all succeed, one record.
	for i, err := range parallel(20, func(i int) error {
		return s.Revoke(&store.Revocation{Serial: "78", ReasonCode: i, RevokedAt: t0})
	}) {
		if err != nil {
			t.Errorf("concurrent Revoke %d: %v", i, err)
		}
	}
	revs, err := s.Revocations()
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	if len(revs) != 2 {
		t.Errorf("Revocations has %d records, want 2", len(revs))
	}
}

func testRevocationsOrder(t *testing.T, s store.Store) {
	revs := []*store.Revocation{
		{Serial: "5", RevokedAt: t0.Add(time.Hour), Via: "mtls"},
		{Serial: "20", RevokedAt: t0, ReasonCode: 1, Via: "cli"},
		{Serial: "3", RevokedAt: t0, Via: "cli"},
		{Serial: "8", RevokedAt: t0.Add(-time.Hour), NotAfter: t0, Via: "token:runners"},
	}
	for _, r := range revs {
		if err := s.Revoke(r); err != nil {
			t.Fatalf("Revoke(%s): %v", r.Serial, err)
		}
	}
	got, err := s.Revocations()
	if err != nil {
		t.Fatalf("Revocations: %v", err)
	}
	want := []*store.Revocation{revs[3], revs[2], revs[1], revs[0]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Revocations (-want +got):\n%s", diff)
	}
}

func testClosed(t *testing.T, s store.Store) {
	if err := s.PutCertificate(testCert("1", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := map[string]func() error{
		"UseToken":       func() error { return s.UseToken("x", t0) },
		"PutCertificate": func() error { return s.PutCertificate(testCert("2", t0)) },
		"Certificate":    func() error { _, err := s.Certificate("1"); return err },
		"Certificates":   func() error { return s.Certificates(func(*store.Certificate) bool { return true }) },
		"Revoke":         func() error { return s.Revoke(&store.Revocation{Serial: "1", RevokedAt: t0}) },
		"Revocation":     func() error { _, err := s.Revocation("1"); return err },
		"Revocations":    func() error { _, err := s.Revocations(); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after Close: got %v, want an error saying the store is closed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestBoltReopen checks that what a Bolt store wrote is there after it is
// closed and opened again.
func TestBoltReopen(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	s, err := store.OpenBolt(path, store.BoltOptions{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	certs := []*store.Certificate{testCert("1", t0), testCert("2", t0.Add(time.Second))}
	certs[1].RenewedFrom = "1"
	rev := &store.Revocation{Serial: "1", ReasonCode: 4, Reason: "superseded", RevokedAt: t0, NotAfter: t0.Add(time.Hour), Via: "mtls"}
	for _, c := range certs {
		if err := s.PutCertificate(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UseToken("jti-1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(rev); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm != 0o600 {
		t.Errorf("new store file has mode %v, want 0600", perm)
	}

	for _, opts := range []store.BoltOptions{{}, {ReadOnly: true}} {
		s := openBolt(t, path, opts)
		if diff := cmp.Diff(certs, listAll(t, s)); diff != "" {
			t.Errorf("ReadOnly=%v: Certificates after reopening (-want +got):\n%s", opts.ReadOnly, diff)
		}
		revs, err := s.Revocations()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*store.Revocation{rev}, revs); diff != "" {
			t.Errorf("ReadOnly=%v: Revocations after reopening (-want +got):\n%s", opts.ReadOnly, diff)
		}
		if opts.ReadOnly {
			if err := s.PutCertificate(testCert("3", t0)); err == nil {
				t.Error("PutCertificate on a read-only store succeeded")
			}
			if err := s.UseToken("jti-2", t0); err == nil {
				t.Error("UseToken on a read-only store succeeded")
			}
		} else if err := s.UseToken("jti-1", t0.Add(time.Minute)); !errors.Is(err, store.ErrTokenUsed) {
			t.Errorf("UseToken after reopening: got %v, want ErrTokenUsed", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBoltLocking checks that one process (here: one open file) writes at
// a time, and that read-only opens share the file with each other only.
func TestBoltLocking(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	const timeout = 100 * time.Millisecond
	short := func(readOnly bool) store.BoltOptions {
		return store.BoltOptions{LockTimeout: timeout, ReadOnly: readOnly}
	}
	wantLocked := func(what string, opts store.BoltOptions) {
		t.Helper()
		start := time.Now()
		s, err := store.OpenBolt(path, opts)
		if err == nil {
			s.Close()
			t.Fatalf("%s: OpenBolt succeeded, want ErrLocked", what)
		}
		if !errors.Is(err, store.ErrLocked) || !errors.Is(err, berrors.ErrTimeout) {
			t.Errorf("%s: got %v, want ErrLocked wrapping bbolt's timeout", what, err)
		}
		if !strings.Contains(err.Error(), "the CA may be running") {
			t.Errorf("%s: error %q does not say the CA may be running", what, err)
		}
		// Not a timing assertion: a hang here would be the bug.
		if elapsed := time.Since(start); elapsed > 30*time.Second {
			t.Errorf("%s: OpenBolt took %v with a lock timeout of %v", what, elapsed, timeout)
		}
	}

	w, err := store.OpenBolt(path, short(false))
	if err != nil {
		t.Fatal(err)
	}
	wantLocked("second writer", short(false))
	wantLocked("reader while a writer has it", short(true))
	if err := w.PutCertificate(testCert("1", t0)); err != nil {
		t.Fatalf("PutCertificate while another open was refused: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r1, err := store.OpenBolt(path, short(true))
	if err != nil {
		t.Fatalf("first reader: %v", err)
	}
	defer r1.Close()
	r2, err := store.OpenBolt(path, short(true))
	if err != nil {
		t.Fatalf("second reader alongside the first: %v", err)
	}
	defer r2.Close()
	for i, r := range []*store.Bolt{r1, r2} {
		if _, err := r.Certificate("1"); err != nil {
			t.Errorf("reader %d: Certificate: %v", i+1, err)
		}
	}
	wantLocked("writer while readers have it", short(false))
}

func TestBoltOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.db")
	if _, err := store.OpenBolt(missing, store.BoltOptions{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open of a missing file: got %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open created the file")
	}

	// A bbolt file that some other program wrote.
	foreign := filepath.Join(dir, "foreign.db")
	editBolt(t, foreign, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("widgets"))
		return err
	})

	// A store written by a newer keyless.
	newer := filepath.Join(dir, "newer.db")
	s := openBolt(t, newer, store.BoltOptions{})
	s.Close()
	editBolt(t, newer, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte(strconv.Itoa(store.FormatVersion+1)))
	})

	for _, path := range []string{foreign, newer} {
		for _, readOnly := range []bool{false, true} {
			s, err := store.OpenBolt(path, store.BoltOptions{ReadOnly: readOnly})
			if err == nil {
				s.Close()
				t.Errorf("OpenBolt(%s, ReadOnly=%v) succeeded, want an error", filepath.Base(path), readOnly)
				continue
			}
			if errors.Is(err, store.ErrLocked) {
				t.Errorf("OpenBolt(%s, ReadOnly=%v): %v, want an error other than ErrLocked", filepath.Base(path), readOnly, err)
			}
		}
	}
}

func editBolt(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBoltTokenPruning checks that Bolt keeps token ids until an hour past
// their expiry and then forgets them, so the file does not grow forever.
func TestBoltTokenPruning(t *testing.T) {
	t.Parallel()
	clk := testkit.NewClock(t0)
	s := openBolt(t, dbPath(t), store.BoltOptions{Now: clk.Now})
	count := func() int {
		t.Helper()
		n, err := store.TokenCount(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	const lifetime = 5 * time.Minute
	for i := range 10 {
		if err := s.UseToken(fmt.Sprint("old-", i), t0.Add(lifetime)); err != nil {
			t.Fatal(err)
		}
	}

	// 59 minutes after they expired: the ids are kept.
	clk.Set(t0.Add(lifetime + 59*time.Minute))
	for i := range 5 {
		if err := s.UseToken(fmt.Sprint("new-", i), clk.Now().Add(lifetime)); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(); got != 15 {
		t.Errorf("59 minutes after expiry: %d ids remembered, want 15", got)
	}
	if err := s.UseToken("old-0", t0.Add(lifetime)); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("replay 59 minutes after expiry: got %v, want ErrTokenUsed", err)
	}

	// Past the hour: new uses forget the old ids, a few at a time.
	clk.Set(t0.Add(lifetime + 61*time.Minute))
	for i := range 3 {
		if err := s.UseToken(fmt.Sprint("newer-", i), clk.Now().Add(lifetime)); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(); got != 8 {
		t.Errorf("61 minutes after expiry: %d ids remembered, want 8 (5 new + 3 newer)", got)
	}
	if err := s.UseToken("new-0", clk.Now()); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("replay of an unexpired id: got %v, want ErrTokenUsed", err)
	}

	// In steady use, the ids remembered are those of the last hour and a
	// bit, however many are used in all.
	const step = time.Minute
	const uses = 200
	for i := range uses {
		clk.Set(clk.Now().Add(step))
		if err := s.UseToken(fmt.Sprint("steady-", i), clk.Now().Add(lifetime)); err != nil {
			t.Fatal(err)
		}
	}
	if got, limit := count(), int((lifetime+time.Hour)/step)+2; got > limit {
		t.Errorf("after %d uses %v apart: %d ids remembered, want at most %d", uses, step, got, limit)
	}
	if err := store.CheckBolt(s); err != nil {
		t.Errorf("consistency check: %v", err)
	}
}

// The crash test runs this test in a child process that records
// certificates until it is killed.
const (
	crashEnvDB   = "KEYLESS_STORE_CRASH_DB"
	crashEnvBase = "KEYLESS_STORE_CRASH_BASE"
	crashPrefix  = "stored "
)

// TestCrashChild is the child process of TestBoltCrash. Run directly, it
// skips.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvDB)
	if path == "" {
		t.Skip("helper process for TestBoltCrash")
	}
	base, err := strconv.Atoi(os.Getenv(crashEnvBase))
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenBolt(path, store.BoltOptions{LockTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The parent kills us long before this; the deadline only stops an
	// orphan.
	deadline := time.Now().Add(30 * time.Second)
	var mu sync.Mutex
	errs := parallel(8, func(g int) error {
		for i := 0; time.Now().Before(deadline); i++ {
			serial := strconv.Itoa(base + g*1_000_000 + i)
			if err := s.UseToken("token-"+serial, time.Now().Add(time.Hour)); err != nil {
				return err
			}
			if err := s.PutCertificate(testCert(serial, time.Now())); err != nil {
				return err
			}
			mu.Lock()
			// One write, so a kill cannot leave half a line behind.
			_, err := os.Stdout.WriteString(crashPrefix + serial + "\n")
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestBoltCrash kills a process that is writing to the store, several
// times, and checks after each kill that the file opens cleanly and holds
// every write that returned before the kill.
func TestBoltCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary: %v", err)
	}
	path := dbPath(t)
	var total int
	for round := range 5 {
		base := (round + 1) * 100_000_000
		confirmed := runCrashChild(t, exe, path, base, 300)
		total += len(confirmed)

		s, err := store.OpenBolt(path, store.BoltOptions{LockTimeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("round %d: opening after the kill: %v", round, err)
		}
		if err := store.CheckBolt(s); err != nil {
			t.Errorf("round %d: consistency check: %v", round, err)
		}
		for _, serial := range confirmed {
			if _, err := s.Certificate(serial); err != nil {
				t.Errorf("round %d: certificate %s, confirmed before the kill: %v", round, serial, err)
			}
			if err := s.UseToken("token-"+serial, t0); !errors.Is(err, store.ErrTokenUsed) {
				t.Errorf("round %d: token of %s, confirmed before the kill: got %v, want ErrTokenUsed", round, serial, err)
			}
		}
		listed := 0
		if err := s.Certificates(func(*store.Certificate) bool { listed++; return true }); err != nil {
			t.Errorf("round %d: Certificates: %v", round, err)
		}
		if listed < total {
			t.Errorf("round %d: %d certificates listed, want at least the %d confirmed", round, listed, total)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d writes confirmed over 5 kills", total)
}

// runCrashChild starts the child, kills it once it has confirmed at least
// n writes, and returns every serial it confirmed.
func runCrashChild(t *testing.T, exe, path string, base, n int) []string {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashEnvDB+"="+path, crashEnvBase+"="+strconv.Itoa(base))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	lines := make(chan string)
	go func() {
		defer close(lines)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return // a final line without its newline was not confirmed
			}
			lines <- line
		}
	}()

	var confirmed []string
	timeout := time.After(20 * time.Second)
	killed := false
	for !killed {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited before it was killed; stderr:\n%s", stderr.String())
			}
			if s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), crashPrefix); ok {
				confirmed = append(confirmed, s)
			}
			if len(confirmed) >= n {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatalf("killing the child: %v", err)
				}
				killed = true
			}
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child confirmed %d writes in 20s, want %d; stderr:\n%s", len(confirmed), n, stderr.String())
		}
	}
	// Lines written before the kill landed still count.
	for line := range lines {
		if s, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), crashPrefix); ok {
			confirmed = append(confirmed, s)
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("child exited cleanly, want killed")
	}
	return confirmed
}

// BenchmarkSign measures what signing costs the store: each op is one
// UseToken and one PutCertificate, as for one certificate, from many
// concurrent clients. The certs/s metric is the store's ceiling on
// signatures per second.
func BenchmarkSign(b *testing.B) {
	der := make([]byte, 800) // about the size of an ECDSA leaf certificate
	for i := range der {
		der[i] = byte(i)
	}
	for _, clients := range []int{16, 64} {
		procs := runtime.GOMAXPROCS(0)
		perProc := max(1, clients/procs)
		b.Run(fmt.Sprintf("clients=%d", perProc*procs), func(b *testing.B) {
			s := openBolt(b, dbPath(b), store.BoltOptions{})
			var next atomic.Int64
			b.SetParallelism(perProc)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serial := strconv.FormatInt(next.Add(1), 10)
					now := time.Now()
					if err := s.UseToken("token-"+serial, now.Add(5*time.Minute)); err != nil {
						b.Error(err)
						return
					}
					c := testCert(serial, now)
					c.DER = der
					if err := s.PutCertificate(c); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}

// TestBusy: a store held open (as a running CA holds it) is busy for a
// writer and a reader at once; a read-only open leaves it free for other
// readers but busy for a writer; a closed one is free.
func TestBusy(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Busy needs flock; on Windows OpenBolt's timeout decides")
	}
	path := filepath.Join(t.TempDir(), "busy.db")
	if store.Busy(path, store.BoltOptions{}) {
		t.Fatal("a missing file is busy")
	}
	b, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !store.Busy(path, store.BoltOptions{}) || !store.Busy(path, store.BoltOptions{ReadOnly: true}) {
		t.Fatal("a store open for writing is not busy")
	}
	b.Close()
	if store.Busy(path, store.BoltOptions{}) {
		t.Fatal("a closed store is busy")
	}
	r, err := store.OpenBolt(path, store.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if store.Busy(path, store.BoltOptions{ReadOnly: true}) || !store.Busy(path, store.BoltOptions{}) {
		t.Fatal("a read-only open: want free for readers, busy for a writer")
	}
}
