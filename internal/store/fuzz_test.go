package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// fuzzSerial is the key the fuzzed records are stored under.
const fuzzSerial = "340282366920938463463374607431768211455"

// fuzzIssuedAt is the time in the fuzzed issue-order index key.
var fuzzIssuedAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// maxTime is as late as a time.Time goes.
var maxTime = time.Unix(1<<62, 0)

// FuzzBoltRecords puts arbitrary bytes where a bbolt file keeps a
// certificate record, a revocation record and the certificate's
// issue-order index key, as a damaged or hand-edited file would hold
// them, and reads them back through every Store method that decodes them.
// Whatever the bytes:
//   - nothing panics;
//   - a record that is there but does not decode is an error that is not
//     ErrNotFound (nor another sentinel): a damaged revocation must never
//     read as "not revoked";
//   - a record that decodes is exactly what an independent reading of the
//     record format gives, kept to the Store contract (times in UTC,
//     empty slices nil), the same through the single and the listing
//     methods, and stored again it reads back the same.
func FuzzBoltRecords(f *testing.F) {
	b, err := OpenBolt(filepath.Join(f.TempDir(), "ca.db"), BoltOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	// The file is thrown away: an fsync per input would only slow the
	// fuzzer down.
	b.db.NoSync = true

	cert, _ := json.Marshal(certRecordOf(&Certificate{Serial: fuzzSerial, Subject: "gitlab-runner", SANs: []string{"gitlab-runner", "10.0.0.1"},
		NotBefore: fuzzIssuedAt.Add(-time.Minute), NotAfter: fuzzIssuedAt.Add(24 * time.Hour), Provisioner: "runners", IssuedAt: fuzzIssuedAt, DER: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}))
	rev, _ := json.Marshal(revocationRecordOf(&Revocation{Serial: fuzzSerial, ReasonCode: 1, Reason: "key compromise", RevokedAt: fuzzIssuedAt, NotAfter: fuzzIssuedAt.Add(24 * time.Hour), Via: "mtls"}))
	f.Add(cert, rev, orderKey(fuzzIssuedAt, fuzzSerial))
	f.Add([]byte(`{"v":2,"serial":"1"}`), []byte(`{"v":1}`), []byte{})
	f.Fuzz(func(t *testing.T, certRec, revRec, index []byte) {
		if len(index) == 0 || len(index) > bolt.MaxKeySize {
			index = orderKey(fuzzIssuedAt, fuzzSerial)
		}
		err := b.db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketCertificates, bucketCertificatesByTime, bucketRevocations, bucketCertificatesByExpiry, bucketRevocationsByExpiry} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bucketCertificates).Put([]byte(fuzzSerial), certRec); err != nil {
				return err
			}
			if err := tx.Bucket(bucketCertificatesByTime).Put(index, []byte{}); err != nil {
				return err
			}
			// The expiry indexes list the serial too (under a fixed
			// time: the walks below take every time).
			for _, name := range [][]byte{bucketCertificatesByExpiry, bucketRevocationsByExpiry} {
				if err := tx.Bucket(name).Put(orderKey(fuzzIssuedAt, fuzzSerial), []byte{}); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketRevocations).Put([]byte(fuzzSerial), revRec)
		})
		if err != nil {
			t.Fatal(err)
		}
		wantCert, certOK := readCertRecord(certRec)
		wantRev, revOK := readRevocationRecord(revRec)

		c, err := b.Certificate(fuzzSerial)
		checkRead(t, "Certificate", c, err, wantCert, certOK)
		var listed []*Certificate
		err = b.Certificates(func(c *Certificate) bool { listed = append(listed, c); return true })
		indexOK := bytes.Equal(orderKeySerial(index), []byte(fuzzSerial))
		switch {
		case certOK && indexOK:
			if err != nil || len(listed) != 1 {
				t.Fatalf("Certificates: %d listed, %v", len(listed), err)
			}
			checkRead(t, "Certificates", listed[0], nil, wantCert, true)
		case err == nil:
			t.Fatalf("Certificates listed %d from a damaged record or index", len(listed))
		default:
			checkSentinels(t, "Certificates", err)
		}

		r, err := b.Revocation(fuzzSerial)
		checkRead(t, "Revocation", r, err, wantRev, revOK)
		revs, err := b.Revocations()
		if revOK {
			if err != nil || len(revs) != 1 {
				t.Fatalf("Revocations: %d, %v", len(revs), err)
			}
			checkRead(t, "Revocations", revs[0], nil, wantRev, true)
		} else if err == nil {
			t.Fatal("Revocations listed a damaged record")
		} else {
			checkSentinels(t, "Revocations", err)
		}

		// Through the expiry indexes: a damaged record is an error, never
		// a shorter list (a CRL missing a revocation).
		var expiring []*Certificate
		err = b.CertificatesExpiring(time.Time{}, maxTime, func(c *Certificate) bool { expiring = append(expiring, c); return true })
		if certOK {
			if err != nil || len(expiring) != 1 {
				t.Fatalf("CertificatesExpiring: %d, %v", len(expiring), err)
			}
			checkRead(t, "CertificatesExpiring", expiring[0], nil, wantCert, true)
		} else if err == nil {
			t.Fatal("CertificatesExpiring listed a damaged record")
		} else {
			checkSentinels(t, "CertificatesExpiring", err)
		}
		var inForce []*Revocation
		err = b.RevocationsUnexpired(time.Time{}, func(r *Revocation) bool { inForce = append(inForce, r); return true })
		if revOK {
			if err != nil || len(inForce) != 1 {
				t.Fatalf("RevocationsUnexpired: %d, %v", len(inForce), err)
			}
			checkRead(t, "RevocationsUnexpired", inForce[0], nil, wantRev, true)
		} else if err == nil {
			t.Fatal("RevocationsUnexpired listed a damaged record")
		} else {
			checkSentinels(t, "RevocationsUnexpired", err)
		}

		// A record that is fit to be written reads back the same.
		m := NewMemory()
		if certOK && checkSerial(wantCert.Serial) == nil && !wantCert.IssuedAt.IsZero() {
			if err := m.PutCertificate(c); err != nil {
				t.Fatal(err)
			}
			again, err := m.Certificate(c.Serial)
			checkRead(t, "Certificate after PutCertificate", again, err, c, true)
		}
		if revOK && checkSerial(wantRev.Serial) == nil && !wantRev.RevokedAt.IsZero() {
			if err := m.Revoke(r); err != nil {
				t.Fatal(err)
			}
			again, err := m.Revocation(r.Serial)
			checkRead(t, "Revocation after Revoke", again, err, r, true)
		}
	})
}

// checkRead compares what the store read with what the record holds.
func checkRead[T any](t *testing.T, op string, got *T, err error, want *T, ok bool) {
	t.Helper()
	if !ok {
		if err == nil {
			t.Fatalf("%s read a damaged record as %+v", op, got)
		}
		checkSentinels(t, op, err)
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s differs from the record (-record +read):\n%s", op, diff)
	}
	checkUTC(t, op, got)
}

func checkSentinels(t *testing.T, op string, err error) {
	t.Helper()
	for _, s := range []error{ErrNotFound, ErrTokenUsed, ErrExists, ErrLocked} {
		if errors.Is(err, s) {
			t.Fatalf("%s: a damaged record reads as %q: %v", op, s, err)
		}
	}
}

// checkUTC checks the contract's "times come back in UTC, without
// monotonic clock readings" (cmp compares times with Equal, which ignores
// both).
func checkUTC(t *testing.T, op string, v any) {
	t.Helper()
	var times []time.Time
	switch v := v.(type) {
	case *Certificate:
		times = []time.Time{v.NotBefore, v.NotAfter, v.IssuedAt}
	case *Revocation:
		times = []time.Time{v.RevokedAt, v.NotAfter}
	}
	for _, tm := range times {
		if tm.Location() != time.UTC || tm != tm.Round(0) {
			t.Fatalf("%s: time %v is not plain UTC", op, tm)
		}
	}
}

// readCertRecord reads a certificate record by the file format, written
// out again here so that a change to it shows: a JSON object with the
// record version "v" (1) and the certificate's fields.
func readCertRecord(b []byte) (*Certificate, bool) {
	var r struct {
		V           int       `json:"v"`
		Serial      string    `json:"serial"`
		Subject     string    `json:"subject"`
		SANs        []string  `json:"sans"`
		NotBefore   time.Time `json:"notBefore"`
		NotAfter    time.Time `json:"notAfter"`
		Provisioner string    `json:"provisioner"`
		IssuedAt    time.Time `json:"issuedAt"`
		RenewedFrom string    `json:"renewedFrom"`
		DER         []byte    `json:"der"`
	}
	if json.Unmarshal(b, &r) != nil || r.V != 1 {
		return nil, false
	}
	return &Certificate{Serial: r.Serial, Subject: r.Subject, SANs: nilIfEmpty(r.SANs), NotBefore: r.NotBefore.UTC(), NotAfter: r.NotAfter.UTC(),
		Provisioner: r.Provisioner, IssuedAt: r.IssuedAt.UTC(), RenewedFrom: r.RenewedFrom, DER: nilIfEmpty(r.DER)}, true
}

func readRevocationRecord(b []byte) (*Revocation, bool) {
	var r struct {
		V          int       `json:"v"`
		Serial     string    `json:"serial"`
		ReasonCode int       `json:"reasonCode"`
		Reason     string    `json:"reason"`
		RevokedAt  time.Time `json:"revokedAt"`
		NotAfter   time.Time `json:"notAfter"`
		Via        string    `json:"via"`
	}
	if json.Unmarshal(b, &r) != nil || r.V != 1 {
		return nil, false
	}
	return &Revocation{Serial: r.Serial, ReasonCode: r.ReasonCode, Reason: r.Reason, RevokedAt: r.RevokedAt.UTC(), NotAfter: r.NotAfter.UTC(), Via: r.Via}, true
}

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}
