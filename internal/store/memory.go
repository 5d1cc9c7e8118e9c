package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// errClosed is returned by a closed Memory.
var errClosed = errors.New("store is closed")

// Memory is a Store kept in memory, for tests. It keeps the contracts of
// [Store] except durability: everything is lost with the process. It never
// forgets token ids. The zero value is not usable; call [NewMemory].
type Memory struct {
	mu          sync.Mutex
	closed      bool
	tokens      map[string]time.Time
	certs       map[string][]byte // serial → encoded record, as Bolt stores it
	certOrder   map[string][]byte // serial → orderKey
	revocations map[string][]byte // serial → encoded record
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		tokens:      make(map[string]time.Time),
		certs:       make(map[string][]byte),
		certOrder:   make(map[string][]byte),
		revocations: make(map[string][]byte),
	}
}

// UseToken implements [Store].
func (m *Memory) UseToken(id string, expires time.Time) error {
	if err := checkToken(id, expires); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("recording token id: %w", errClosed)
	}
	if _, ok := m.tokens[id]; ok {
		return fmt.Errorf("recording token id: %w", ErrTokenUsed)
	}
	m.tokens[id] = expires
	return nil
}

// PutCertificate implements [Store].
func (m *Memory) PutCertificate(c *Certificate) error { return putCertificate(m, c, "", time.Time{}) }

// IssueCertificate implements [Store].
func (m *Memory) IssueCertificate(c *Certificate, tokenID string, expires time.Time) error {
	return issueCertificate(m, c, tokenID, expires)
}

// putCertificate stores a certificate's record and, unless tokenID is
// empty, spends the token that paid for it.
func (m *Memory) putCertificate(c *Certificate, v []byte, tokenID string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return fmt.Errorf("storing certificate %s: %w", c.Serial, errClosed)
	case tokenID != "" && m.tokens[tokenID] != time.Time{}:
		return fmt.Errorf("recording token id: %w", ErrTokenUsed)
	}
	if _, ok := m.certs[c.Serial]; ok {
		return fmt.Errorf("storing certificate %s: %w", c.Serial, ErrExists)
	}
	if tokenID != "" {
		m.tokens[tokenID] = expires
	}
	m.certs[c.Serial] = v
	m.certOrder[c.Serial] = orderKey(c.IssuedAt, c.Serial)
	return nil
}

// Certificate implements [Store].
func (m *Memory) Certificate(serial string) (*Certificate, error) {
	return memGet(m, m.certs, "certificate", serial, decodeCertificate)
}

// memGet reads one record by serial from a table, or ErrNotFound.
func memGet[T any](m *Memory, table map[string][]byte, what, serial string, decode func([]byte) (*T, error)) (*T, error) {
	if err := checkSerial(serial); err != nil {
		return nil, fmt.Errorf("looking up %s: %w", what, err)
	}
	m.mu.Lock()
	v, ok := table[serial]
	closed := m.closed
	m.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("looking up %s %s: %w", what, serial, errClosed)
	case !ok:
		return nil, fmt.Errorf("%s %s: %w", what, serial, ErrNotFound)
	}
	return decode(v)
}

// Certificates implements [Store].
func (m *Memory) Certificates(fn func(*Certificate) bool) error {
	type entry struct{ key, value []byte }
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("listing certificates: %w", errClosed)
	}
	entries := make([]entry, 0, len(m.certs))
	for serial, v := range m.certs {
		entries = append(entries, entry{m.certOrder[serial], v})
	}
	m.mu.Unlock()

	slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	for _, e := range entries {
		c, err := decodeCertificate(e.value)
		if err != nil {
			return fmt.Errorf("listing certificates: %w", err)
		}
		if !fn(c) {
			return nil
		}
	}
	return nil
}

// Revoke implements [Store].
func (m *Memory) Revoke(r *Revocation) error {
	v, err := prepareRevocation(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("recording revocation of %s: %w", r.Serial, errClosed)
	}
	if _, ok := m.revocations[r.Serial]; !ok {
		m.revocations[r.Serial] = v
	}
	return nil
}

// Revocation implements [Store].
func (m *Memory) Revocation(serial string) (*Revocation, error) {
	return memGet(m, m.revocations, "revocation of", serial, decodeRevocation)
}

// Revocations implements [Store].
func (m *Memory) Revocations() ([]*Revocation, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("listing revocations: %w", errClosed)
	}
	values := make([][]byte, 0, len(m.revocations))
	for _, v := range m.revocations {
		values = append(values, v)
	}
	m.mu.Unlock()
	return decodeRevocations(values)
}

// CertificatesExpiring implements [Store], by reading every certificate:
// the memory store is for tests.
func (m *Memory) CertificatesExpiring(from, to time.Time, fn func(*Certificate) bool) error {
	certs, err := m.certificatesWhere(func(c *Certificate) bool { return !c.NotAfter.Before(from) && !c.NotAfter.After(to) })
	if err != nil {
		return fmt.Errorf("listing expiring certificates: %w", err)
	}
	for _, c := range certs {
		if !fn(c) {
			return nil
		}
	}
	return nil
}

// CertificatesWithKey implements [Store], by reading every certificate.
func (m *Memory) CertificatesWithKey(spki []byte, after time.Time) ([]*Certificate, error) {
	want := keyHash(spki)
	certs, err := m.certificatesWhere(func(c *Certificate) bool {
		return c.NotAfter.After(after) && bytes.Equal(certificateKeyHash(c.DER), want)
	})
	if err != nil {
		return nil, fmt.Errorf("finding certificates by key: %w", err)
	}
	return certs, nil
}

// certificatesWhere returns the certificates for which keep is true, in
// NotAfter order, then numeric serial order.
func (m *Memory) certificatesWhere(keep func(*Certificate) bool) ([]*Certificate, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errClosed
	}
	values := make([][]byte, 0, len(m.certs))
	for _, v := range m.certs {
		values = append(values, v)
	}
	m.mu.Unlock()
	var out []*Certificate
	for _, v := range values {
		c, err := decodeCertificate(v)
		if err != nil {
			return nil, err
		}
		if keep(c) {
			out = append(out, c)
		}
	}
	sortByExpiry(out)
	return out, nil
}

// RevokedKey implements [Store], by reading every revocation.
func (m *Memory) RevokedKey(spki []byte) (string, error) {
	want := keyHash(spki)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", fmt.Errorf("looking up revoked key: %w", errClosed)
	}
	for serial, rv := range m.revocations {
		if _, err := decodeRevocation(rv); err != nil {
			return "", fmt.Errorf("looking up revoked key: %w", err)
		}
		v, ok := m.certs[serial]
		if !ok {
			continue
		}
		c, err := decodeCertificate(v)
		if err != nil {
			return "", fmt.Errorf("looking up revoked key: %w", err)
		}
		if bytes.Equal(certificateKeyHash(c.DER), want) {
			return serial, nil
		}
	}
	return "", nil
}

// RevocationsUnexpired implements [Store], by reading every revocation.
func (m *Memory) RevocationsUnexpired(at time.Time, fn func(*Revocation) bool) error {
	revs, err := m.Revocations()
	return visitUnexpired(revs, err, at, fn)
}

// decodeRevocations decodes records and sorts them as Revocations
// promises.
func decodeRevocations(values [][]byte) ([]*Revocation, error) {
	out := make([]*Revocation, 0, len(values))
	for _, v := range values {
		r, err := decodeRevocation(v)
		if err != nil {
			return nil, fmt.Errorf("listing revocations: %w", err)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Revocation) int {
		return bytes.Compare(orderKey(a.RevokedAt, a.Serial), orderKey(b.RevokedAt, b.Serial))
	})
	return out, nil
}

// Close implements [Store].
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
