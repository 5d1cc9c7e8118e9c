// Package store holds the keyless CA's durable state: every certificate it
// issued, the ids of the one-time tokens it accepted, and its revocations.
//
// The state sits behind the [Store] interface, whose contracts are written
// on it. [OpenBolt] gives the embedded default, a single bbolt file that
// survives crashes and power loss; [NewMemory] gives an in-memory store with
// the same contracts and no durability, for tests.
//
// Only the CA packages (internal/ca and below, and the CLI's operator
// commands that open the CA's database read-only) may import it.
package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Certificate is an issued certificate as the CA recorded it.
//
// Its JSON names are the stored record's (the file format): change them
// only with a new recordVersion.
type Certificate struct {
	Serial      string    `json:"serial"`            // decimal (big.Int.String()), see [Store]
	Subject     string    `json:"subject,omitempty"` // the subject's common name
	SANs        []string  `json:"sans,omitempty"`    // DNS names, IPs, emails and URIs as strings
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	Provisioner string    `json:"provisioner,omitempty"` // name of the provisioner that authorised it
	IssuedAt    time.Time `json:"issuedAt"`
	RenewedFrom string    `json:"renewedFrom,omitempty"` // serial of the certificate it renews, or ""
	DER         []byte    `json:"der,omitempty"`         // the certificate itself
}

// Revocation records a revoked certificate. Its JSON names are the stored
// record's.
type Revocation struct {
	Serial     string    `json:"serial"`
	ReasonCode int       `json:"reasonCode"` // RFC 5280 CRLReason
	Reason     string    `json:"reason,omitempty"`
	RevokedAt  time.Time `json:"revokedAt"`
	NotAfter   time.Time `json:"notAfter"`      // the certificate's expiry; revocations of expired certificates may be dropped from CRLs
	Via        string    `json:"via,omitempty"` // how: "token:<provisioner>", "mtls", or "cli"
}

// Errors a caller branches on. Methods wrap them, so test with [errors.Is].
var (
	// ErrNotFound means there is no certificate or revocation with that
	// serial.
	ErrNotFound = errors.New("not found")
	// ErrTokenUsed means UseToken was given an id it had recorded before:
	// the token is being replayed.
	ErrTokenUsed = errors.New("token already used")
	// ErrExists means PutCertificate was given a serial that is already
	// stored.
	ErrExists = errors.New("certificate serial already stored")
	// ErrLocked means OpenBolt could not lock the database file within
	// BoltOptions.LockTimeout because another process holds it. The
	// returned error also wraps bbolt's timeout error.
	ErrLocked = errors.New("database is locked by another process; the CA may be running")
)

// Store is the CA's state.
//
// Implementations are safe for concurrent use. A method that writes and
// returns nil has made its write durable: it survives a crash or power loss
// from then on (the in-memory store, made for tests, is the exception). A
// write that returns an error other than ErrTokenUsed or ErrExists may or
// may not have been recorded.
//
// Serials are the decimal form of a positive serial number, as
// big.Int.String() writes it: digits only, no sign, no leading zeros. An
// empty or malformed serial, an empty token id, an id or serial longer than
// [MaxKeyLen] bytes, or a missing (zero) time that a method needs is an
// error that wraps none of the sentinel errors: it is a bug in the caller,
// which validates what it receives from clients before it gets here.
//
// Values handed in are copied; values returned belong to the caller. Times
// come back in UTC, without monotonic clock readings, and empty slices come
// back nil.
//
// Once Close has been called every other method returns an error.
type Store interface {
	// UseToken records a one-time token id. It returns ErrTokenUsed if the
	// id was recorded before, and nil for exactly one of any number of
	// concurrent calls with the same id. expires is when the token stops
	// being valid: the id is kept at least until then, and may be
	// forgotten some time after.
	UseToken(id string, expires time.Time) error

	// PutCertificate records an issued certificate. It returns ErrExists,
	// and changes nothing, if the serial is already stored. c.IssuedAt
	// must be set.
	PutCertificate(c *Certificate) error

	// IssueCertificate records a one-time token id and the certificate it
	// paid for, atomically, in one durable write: either both are stored
	// or neither. It returns ErrTokenUsed if the id was recorded before
	// (exactly one of concurrent calls with the same id succeeds), and
	// ErrExists if the serial is stored. expires is as for UseToken.
	IssueCertificate(c *Certificate, tokenID string, expires time.Time) error

	// Certificate returns the certificate with this serial, or ErrNotFound.
	Certificate(serial string) (*Certificate, error)

	// Certificates calls fn for every stored certificate, oldest first: in
	// IssuedAt order, and in numeric serial order for equal IssuedAt. It
	// stops early, returning nil, when fn returns false. fn is called with
	// no lock held, so it may call the store's other methods; a
	// certificate stored during the walk may or may not be seen.
	Certificates(fn func(*Certificate) bool) error

	// Revoke records a revocation. Revoking an already revoked serial
	// keeps the first record and returns nil. The certificate need not be
	// stored (the CA may revoke certificates it only knows by serial).
	// r.RevokedAt must be set.
	Revoke(r *Revocation) error

	// Revocation returns the revocation of serial, or ErrNotFound.
	Revocation(serial string) (*Revocation, error)

	// Revocations returns every revocation, in RevokedAt order, and in
	// numeric serial order for equal RevokedAt.
	Revocations() ([]*Revocation, error)

	// The lookups below are indexed: their cost grows with what they
	// return (and at most logarithmically with the store), not with the
	// number of certificates or revocations stored. (A read-only Bolt
	// open of a file in the old layout, which it may not rewrite, answers
	// them by reading everything instead.)
	//
	// A certificate's public key is the SubjectPublicKeyInfo in its DER
	// (as x509.Certificate.RawSubjectPublicKeyInfo holds it); a
	// certificate whose DER does not hold one is found by no key.
	//
	// Each answer reflects every write that returned before the lookup
	// began: a RevokedKey that starts after a Revoke returned finds the
	// revoked key, and a CertificatesWithKey that starts after a
	// PutCertificate or IssueCertificate returned finds that certificate.
	// The CA relies on this to close the race between issuing a
	// certificate for a key and revoking that key.

	// CertificatesExpiring calls fn for every stored certificate whose
	// NotAfter is within [from, to], in NotAfter order, and in numeric
	// serial order for equal NotAfter. It stops early, returning nil,
	// when fn returns false. As Certificates, it calls fn with no lock
	// held, and a certificate stored during the walk may or may not be
	// seen.
	CertificatesExpiring(from, to time.Time, fn func(*Certificate) bool) error

	// CertificatesWithKey returns the stored certificates that hold the
	// public key spki (a DER SubjectPublicKeyInfo) and whose NotAfter is
	// after the time after, in NotAfter order and numeric serial order
	// for equal NotAfter.
	CertificatesWithKey(spki []byte, after time.Time) ([]*Certificate, error)

	// RevokedKey returns the serial of a revoked certificate that holds
	// the public key spki, or "" if no revoked certificate in the store
	// holds it. A revocation counts whether it was recorded before or
	// after its certificate. When several revoked certificates hold the
	// key, which one is named is not specified.
	RevokedKey(spki []byte) (string, error)

	// RevocationsUnexpired calls fn for every revocation whose NotAfter
	// is zero or not before at (those the CRL at that time lists), in
	// NotAfter order (zero first), and in numeric serial order for equal
	// NotAfter. It stops early, returning nil, when fn returns false,
	// and calls fn with no lock held.
	RevocationsUnexpired(at time.Time, fn func(*Revocation) bool) error

	// Close releases the store once the writes under way have finished.
	// Writes that returned nil before it are durable. Closing a closed
	// store returns nil.
	Close() error
}

// MaxKeyLen is the longest serial or token id a store accepts, in bytes.
// Real ones are far shorter (an RFC 5280 serial has at most 49 decimal
// digits; step tokens use a 64-character hex id); the limit keeps a
// malformed one from reaching the database.
const MaxKeyLen = 1024

// recordVersion is the version of the JSON records this package writes.
// A reader refuses records with a higher version rather than guess.
const recordVersion = 1

func checkSerial(serial string) error {
	switch {
	case serial == "":
		return errors.New("empty serial")
	case len(serial) > MaxKeyLen:
		return fmt.Errorf("serial of %d bytes is longer than %d", len(serial), MaxKeyLen)
	case serial[0] == '0':
		return fmt.Errorf("serial %q is not a positive decimal number without leading zeros", serial)
	}
	for i := 0; i < len(serial); i++ {
		if serial[i] < '0' || serial[i] > '9' {
			return fmt.Errorf("serial %q is not a decimal number", serial)
		}
	}
	return nil
}

// checkTokenID validates a token id. The id is never quoted in the error:
// it comes from a token.
// checkToken validates a token id and its expiry.
func checkToken(id string, expires time.Time) error {
	if err := checkTokenID(id); err != nil {
		return fmt.Errorf("recording token id: %w", err)
	}
	if expires.IsZero() {
		return errors.New("recording token id: expiry is not set")
	}
	return nil
}

// certPutter is what both stores do to record a certificate: store its
// encoded record and, unless tokenID is empty, spend the token that paid
// for it, as one write.
type certPutter interface {
	putCertificate(c *Certificate, record []byte, tokenID string, expires time.Time) error
}

// issueCertificate validates an IssueCertificate call and has s record
// the certificate and spend the token.
func issueCertificate(s certPutter, c *Certificate, tokenID string, expires time.Time) error {
	if err := checkToken(tokenID, expires); err != nil {
		return err
	}
	return putCertificate(s, c, tokenID, expires)
}

// putCertificate validates a certificate, encodes its record and has s
// store it (spending tokenID, unless it is empty).
func putCertificate(s certPutter, c *Certificate, tokenID string, expires time.Time) error {
	record, err := prepareCertificate(c)
	if err != nil {
		return err
	}
	return s.putCertificate(c, record, tokenID, expires)
}

// prepareCertificate validates a certificate record and encodes it.
func prepareCertificate(c *Certificate) ([]byte, error) {
	if c == nil {
		return nil, errors.New("storing certificate: nil certificate")
	}
	return prepare("storing certificate", certRecordOf(c))
}

// prepareRevocation validates a revocation record and encodes it.
func prepareRevocation(r *Revocation) ([]byte, error) {
	if r == nil {
		return nil, errors.New("recording revocation: nil revocation")
	}
	return prepare("recording revocation", revocationRecordOf(r))
}

// prepare checks a record's serial and that its time is set, and encodes
// it; op starts the error.
func prepare[R record](op string, r R) ([]byte, error) {
	serial, field, t := r.key()
	_, what := r.version()
	if err := checkSerial(serial); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if t.IsZero() {
		return nil, fmt.Errorf("%s: %s: %s is not set", op, what, field)
	}
	return encode(r)
}

func checkTokenID(id string) error {
	switch {
	case id == "":
		return errors.New("empty token id")
	case len(id) > MaxKeyLen:
		return fmt.Errorf("token id of %d bytes is longer than %d", len(id), MaxKeyLen)
	}
	return nil
}

// certRecord and revocationRecord are the stored forms: the value's
// fields and the record version, "v".
type (
	certRecord struct {
		V int `json:"v"`
		Certificate
	}
	revocationRecord struct {
		V int `json:"v"`
		Revocation
	}
)

func (r certRecord) version() (int, string)       { return r.V, "certificate " + r.Serial }
func (r revocationRecord) version() (int, string) { return r.V, "revocation of " + r.Serial }

func (r certRecord) key() (string, string, time.Time) { return r.Serial, "IssuedAt", r.IssuedAt }
func (r revocationRecord) key() (string, string, time.Time) {
	return r.Serial, "RevokedAt", r.RevokedAt
}

func certRecordOf(c *Certificate) certRecord {
	r := certRecord{V: recordVersion, Certificate: *c}
	r.NotBefore, r.NotAfter, r.IssuedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), c.IssuedAt.UTC()
	return r
}

func revocationRecordOf(rev *Revocation) revocationRecord {
	r := revocationRecord{V: recordVersion, Revocation: *rev}
	r.RevokedAt, r.NotAfter = rev.RevokedAt.UTC(), rev.NotAfter.UTC()
	return r
}

func decodeCertificate(b []byte) (*Certificate, error) {
	r, err := decode[certRecord](b, "certificate")
	if err != nil {
		return nil, err
	}
	c := r.Certificate
	c.NotBefore, c.NotAfter, c.IssuedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), c.IssuedAt.UTC()
	// Records written here omit empty slices, but one that holds "[]" or
	// "" must still come back nil, as the Store contract says.
	if len(c.SANs) == 0 {
		c.SANs = nil
	}
	if len(c.DER) == 0 {
		c.DER = nil
	}
	return &c, nil
}

func decodeRevocation(b []byte) (*Revocation, error) {
	r, err := decode[revocationRecord](b, "revocation")
	if err != nil {
		return nil, err
	}
	rev := r.Revocation
	rev.RevokedAt, rev.NotAfter = rev.RevokedAt.UTC(), rev.NotAfter.UTC()
	return &rev, nil
}

// record is a stored form: its version and name, and the fields every
// record must have.
type record interface {
	version() (int, string)
	key() (serial, timeField string, t time.Time)
}

func encode[R record](r R) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		_, what := r.version()
		return nil, fmt.Errorf("encoding %s: %w", what, err)
	}
	return b, nil
}

func decode[R record](b []byte, kind string) (R, error) {
	var r R
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding %s record: %w", kind, err)
	}
	if v, what := r.version(); v < 1 || v > recordVersion {
		return r, fmt.Errorf("%s: record version %d is not supported (this keyless reads version %d)", what, v, recordVersion)
	}
	return r, nil
}

// publicKeyOf returns the SubjectPublicKeyInfo, DER, of a DER
// certificate, as crypto/x509 would find it, without parsing the rest.
func publicKeyOf(der []byte) ([]byte, bool) {
	in := cryptobyte.String(der)
	var cert, tbs cryptobyte.String
	if !in.ReadASN1(&cert, casn1.SEQUENCE) || !cert.ReadASN1(&tbs, casn1.SEQUENCE) {
		return nil, false
	}
	if !tbs.SkipOptionalASN1(casn1.Tag(0).Constructed().ContextSpecific()) || // version
		!tbs.SkipASN1(casn1.INTEGER) || // serialNumber
		!tbs.SkipASN1(casn1.SEQUENCE) || // signature
		!tbs.SkipASN1(casn1.SEQUENCE) || // issuer
		!tbs.SkipASN1(casn1.SEQUENCE) || // validity
		!tbs.SkipASN1(casn1.SEQUENCE) { // subject
		return nil, false
	}
	var spki cryptobyte.String
	if !tbs.ReadASN1Element(&spki, casn1.SEQUENCE) {
		return nil, false
	}
	return spki, true
}

// keyHashLen is the length of a keyHash.
const keyHashLen = sha256.Size

// keyHash is what the indexes file a public key (DER
// SubjectPublicKeyInfo) under: its SHA-256.
func keyHash(spki []byte) []byte {
	h := sha256.Sum256(spki)
	return h[:]
}

// certificateKeyHash returns the keyHash of a DER certificate's public
// key, or nil if the DER holds none.
func certificateKeyHash(der []byte) []byte {
	spki, ok := publicKeyOf(der)
	if !ok {
		return nil
	}
	return keyHash(spki)
}

// timeKeyLen is the length of a timeKey.
const timeKeyLen = 12

// timeKey encodes t so that byte order is time order, for any time.Time:
// Unix seconds with the sign bit flipped, then nanoseconds, big-endian.
func timeKey(t time.Time) []byte {
	k := make([]byte, timeKeyLen)
	binary.BigEndian.PutUint64(k, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(k[8:], uint32(t.Nanosecond()))
	return k
}

// orderKey is a time followed by a serial, so that byte order is time
// order and then numeric serial order: serials have no leading zeros, so
// the length prefix orders by magnitude first.
func orderKey(t time.Time, serial string) []byte {
	k := make([]byte, 0, timeKeyLen+2+len(serial))
	k = append(k, timeKey(t)...)
	k = binary.BigEndian.AppendUint16(k, uint16(min(len(serial), math.MaxUint16)))
	return append(k, serial...)
}

// orderKeySerial returns the serial in an orderKey.
func orderKeySerial(k []byte) []byte {
	if len(k) < timeKeyLen+2 {
		return nil
	}
	return k[timeKeyLen+2:]
}
