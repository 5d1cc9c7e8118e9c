package catest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"math/big"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/store"
)

// Filler makes certificate records fast, to fill a store with hundreds
// of thousands of them for scaling benchmarks. Each holds a DER
// certificate from the intermediate with its own serial and its own
// Ed25519 subject key, made by patching those bytes into one signed
// template: only the template's signature verifies. The CA's revocation,
// CRL and listing code reads a record's serial, key and dates, never
// verifies a stored signature, so that is enough for them.
type Filler struct {
	tmpl              []byte
	serialAt, keyAt   int
	serialLen, keyLen int
}

// fillerSerial is the template's serial: 128 bits with the top bit set,
// as the CA makes them (DER: 17 bytes with a leading zero).
var fillerSerial = new(big.Int).SetBytes(bytes.Repeat([]byte{0xA5}, 16))

// NewFiller makes a Filler for certificates issued by intermediate.
func NewFiller(t testing.TB, intermediate *pkitest.CA) *Filler {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: fillerSerial,
		Subject:      pkix.Name{CommonName: "gitlab-runner"},
		DNSNames:     []string{"gitlab-runner"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, intermediate.Cert, pub, intermediate.Key)
	if err != nil {
		t.Fatal(err)
	}
	f := &Filler{tmpl: der, serialLen: 16, keyLen: ed25519.PublicKeySize}
	f.serialAt = bytes.Index(der, fillerSerial.Bytes())
	f.keyAt = bytes.Index(der, pub)
	if f.serialAt < 0 || f.keyAt < 0 || bytes.Count(der, fillerSerial.Bytes()) != 1 {
		t.Fatal("catest: cannot find the serial and key in the template certificate")
	}
	return f
}

// Certificate returns the record of the i'th filler certificate: serial
// and key are a function of i, and differ for every i.
func (f *Filler) Certificate(i uint64, issuedAt, notAfter time.Time) *store.Certificate {
	der := bytes.Clone(f.tmpl)
	s := der[f.serialAt : f.serialAt+f.serialLen]
	for j := range s {
		s[j] = 0xA5
	}
	binary.BigEndian.PutUint64(s[8:], i)
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], i)
	k := sha256.Sum256(append([]byte("catest filler key "), seed[:]...))
	copy(der[f.keyAt:f.keyAt+f.keyLen], k[:])
	return &store.Certificate{
		Serial:      new(big.Int).SetBytes(s).String(),
		Subject:     "gitlab-runner",
		SANs:        []string{"gitlab-runner"},
		NotBefore:   issuedAt.Add(-time.Minute),
		NotAfter:    notAfter,
		Provisioner: Runners,
		IssuedAt:    issuedAt,
		DER:         der,
	}
}

// FillStore writes n filler certificates into a new store file at path
// in transactions of at most 20,000 records (one commit each, not one per
// certificate), and compacts it (store.CompactBolt), so that it commits
// as a store that grew a certificate at a time would. record(i) gives
// the i'th certificate's dates and whether, and when, it is revoked (a
// zero revokedAt: not revoked).
func FillStore(t testing.TB, path string, f *Filler, n int, record func(i int) (issuedAt, notAfter, revokedAt time.Time)) {
	t.Helper()
	st, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 20_000
	for start := 0; start < n; start += chunk {
		var certs []*store.Certificate
		var revs []*store.Revocation
		for i := start; i < min(n, start+chunk); i++ {
			issued, notAfter, revoked := record(i)
			c := f.Certificate(uint64(i), issued, notAfter)
			certs = append(certs, c)
			if !revoked.IsZero() {
				revs = append(revs, &store.Revocation{Serial: c.Serial, ReasonCode: 1, Reason: "filler", RevokedAt: revoked, NotAfter: notAfter, Via: "cli"})
			}
		}
		if err := st.PutBulk(certs, revs); err != nil {
			t.Fatalf("catest: filling the store: %v", err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.CompactBolt(path); err != nil {
		t.Fatal(err)
	}
}
