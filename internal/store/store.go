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
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Certificate is an issued certificate as the CA recorded it.
type Certificate struct {
	Serial      string   // decimal (big.Int.String()), see [Store]
	Subject     string   // the subject's common name
	SANs        []string // DNS names, IPs, emails and URIs as strings
	NotBefore   time.Time
	NotAfter    time.Time
	Provisioner string // name of the provisioner that authorised it
	IssuedAt    time.Time
	RenewedFrom string // serial of the certificate it renews, or ""
	DER         []byte // the certificate itself
}

// Revocation records a revoked certificate.
type Revocation struct {
	Serial     string
	ReasonCode int // RFC 5280 CRLReason
	Reason     string
	RevokedAt  time.Time
	NotAfter   time.Time // the certificate's expiry; revocations of expired certificates may be dropped from CRLs
	Via        string    // how: "token:<provisioner>", "mtls", or "cli"
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

// prepareIssue validates an IssueCertificate call and encodes the
// certificate record.
func prepareIssue(c *Certificate, tokenID string, expires time.Time) ([]byte, error) {
	if err := checkToken(tokenID, expires); err != nil {
		return nil, err
	}
	if err := checkCertificate(c); err != nil {
		return nil, fmt.Errorf("storing certificate: %w", err)
	}
	return encodeCertificate(c)
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

func checkCertificate(c *Certificate) error {
	if c == nil {
		return errors.New("nil certificate")
	}
	if err := checkSerial(c.Serial); err != nil {
		return err
	}
	if c.IssuedAt.IsZero() {
		return fmt.Errorf("certificate %s: IssuedAt is not set", c.Serial)
	}
	return nil
}

func checkRevocation(r *Revocation) error {
	if r == nil {
		return errors.New("nil revocation")
	}
	if err := checkSerial(r.Serial); err != nil {
		return err
	}
	if r.RevokedAt.IsZero() {
		return fmt.Errorf("revocation of %s: RevokedAt is not set", r.Serial)
	}
	return nil
}

// certRecord is the stored form of a Certificate. Field names are part of
// the file format: change them only with a new recordVersion.
type certRecord struct {
	V           int       `json:"v"`
	Serial      string    `json:"serial"`
	Subject     string    `json:"subject,omitempty"`
	SANs        []string  `json:"sans,omitempty"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	Provisioner string    `json:"provisioner,omitempty"`
	IssuedAt    time.Time `json:"issuedAt"`
	RenewedFrom string    `json:"renewedFrom,omitempty"`
	DER         []byte    `json:"der,omitempty"`
}

// revocationRecord is the stored form of a Revocation.
type revocationRecord struct {
	V          int       `json:"v"`
	Serial     string    `json:"serial"`
	ReasonCode int       `json:"reasonCode"`
	Reason     string    `json:"reason,omitempty"`
	RevokedAt  time.Time `json:"revokedAt"`
	NotAfter   time.Time `json:"notAfter"`
	Via        string    `json:"via,omitempty"`
}

func encodeCertificate(c *Certificate) ([]byte, error) {
	b, err := json.Marshal(certRecord{
		V:           recordVersion,
		Serial:      c.Serial,
		Subject:     c.Subject,
		SANs:        c.SANs,
		NotBefore:   c.NotBefore.UTC(),
		NotAfter:    c.NotAfter.UTC(),
		Provisioner: c.Provisioner,
		IssuedAt:    c.IssuedAt.UTC(),
		RenewedFrom: c.RenewedFrom,
		DER:         c.DER,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding certificate %s: %w", c.Serial, err)
	}
	return b, nil
}

func decodeCertificate(b []byte) (*Certificate, error) {
	var r certRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding certificate record: %w", err)
	}
	if r.V < 1 || r.V > recordVersion {
		return nil, fmt.Errorf("certificate %s: record version %d is not supported (this keyless reads version %d)", r.Serial, r.V, recordVersion)
	}
	return &Certificate{
		Serial:      r.Serial,
		Subject:     r.Subject,
		SANs:        r.SANs,
		NotBefore:   r.NotBefore.UTC(),
		NotAfter:    r.NotAfter.UTC(),
		Provisioner: r.Provisioner,
		IssuedAt:    r.IssuedAt.UTC(),
		RenewedFrom: r.RenewedFrom,
		DER:         r.DER,
	}, nil
}

func encodeRevocation(r *Revocation) ([]byte, error) {
	b, err := json.Marshal(revocationRecord{
		V:          recordVersion,
		Serial:     r.Serial,
		ReasonCode: r.ReasonCode,
		Reason:     r.Reason,
		RevokedAt:  r.RevokedAt.UTC(),
		NotAfter:   r.NotAfter.UTC(),
		Via:        r.Via,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding revocation of %s: %w", r.Serial, err)
	}
	return b, nil
}

func decodeRevocation(b []byte) (*Revocation, error) {
	var r revocationRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding revocation record: %w", err)
	}
	if r.V < 1 || r.V > recordVersion {
		return nil, fmt.Errorf("revocation of %s: record version %d is not supported (this keyless reads version %d)", r.Serial, r.V, recordVersion)
	}
	return &Revocation{
		Serial:     r.Serial,
		ReasonCode: r.ReasonCode,
		Reason:     r.Reason,
		RevokedAt:  r.RevokedAt.UTC(),
		NotAfter:   r.NotAfter.UTC(),
		Via:        r.Via,
	}, nil
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
