package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The indexes of format 2. Each is written in the transaction that writes
// the record it indexes, so it is exactly as durable as the record, and a
// read transaction sees both or neither:
//
//   - certificates-by-expiry and revocations-by-expiry list records in
//     NotAfter order, for CertificatesExpiring (keyless ca list
//     --expiring) and RevocationsUnexpired (the CRL);
//   - certificates-by-key lists the certificates of a public key, for
//     CertificatesWithKey (revoking every certificate of a revoked key);
//   - revoked-keys holds the public keys of revoked certificates, for
//     RevokedKey (refusing to issue for, or renew, a revoked key). A key
//     enters it with whichever of its certificate's record and its
//     revocation is written second.
//
// OpenBolt builds them once, when it opens a format 1 file for writing.

var empty = []byte{}

// indexCertificate adds a new certificate to the indexes.
func indexCertificate(tx *bolt.Tx, c *Certificate) error {
	order := orderKey(c.NotAfter, c.Serial)
	if err := tx.Bucket(bucketCertificatesByExpiry).Put(order, empty); err != nil {
		return err
	}
	h := certificateKeyHash(c.DER)
	if h == nil {
		return nil
	}
	if err := tx.Bucket(bucketCertificatesByKey).Put(append(h, order...), empty); err != nil {
		return err
	}
	if tx.Bucket(bucketRevocations).Get([]byte(c.Serial)) == nil {
		return nil
	}
	return markRevokedKey(tx, h, c.Serial)
}

// indexRevocation adds a new revocation to the indexes.
func indexRevocation(tx *bolt.Tx, r *Revocation) error {
	if err := tx.Bucket(bucketRevocationsByExpiry).Put(orderKey(r.NotAfter, r.Serial), empty); err != nil {
		return err
	}
	v := tx.Bucket(bucketCertificates).Get([]byte(r.Serial))
	if v == nil {
		return nil // not one of ours: no key on record
	}
	c, err := decodeCertificate(v)
	if err != nil {
		// A revocation must never leave its key usable unnoticed.
		return fmt.Errorf("reading the key of revoked certificate %s: %w", r.Serial, err)
	}
	if h := certificateKeyHash(c.DER); h != nil {
		return markRevokedKey(tx, h, r.Serial)
	}
	return nil
}

// markRevokedKey records that the key with hash h is revoked, naming
// serial, unless it is recorded already.
func markRevokedKey(tx *bolt.Tx, h []byte, serial string) error {
	keys := tx.Bucket(bucketRevokedKeys)
	if keys.Get(h) != nil {
		return nil
	}
	return keys.Put(h, []byte(serial))
}

// buildIndexes turns a format 1 file into a format 2 one in the open
// write transaction: it makes the index buckets afresh (so a run that
// failed before it committed leaves nothing behind, and running it twice
// gives the same result), fills them from every record, and sets the
// format. Either all of it commits or none of it.
//
// It gathers each index's keys and puts them in key order: bbolt splits
// nodes only when a transaction commits, so inserting a million keys in
// random order into one node would move the node's entries on every
// insert.
func buildIndexes(tx *bolt.Tx) error {
	for _, name := range indexBuckets {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return fmt.Errorf("building indexes: %w", err)
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("building indexes: %w", err)
		}
	}
	revs := tx.Bucket(bucketRevocations)
	var certExpiry, certKeys, revExpiry [][]byte
	revokedKeys := make(map[string][]byte) // keyHash → serial
	err := tx.Bucket(bucketCertificates).ForEach(func(_, v []byte) error {
		c, err := decodeCertificate(v)
		if err != nil {
			return err
		}
		order := orderKey(c.NotAfter, c.Serial)
		certExpiry = append(certExpiry, order)
		if h := certificateKeyHash(c.DER); h != nil {
			certKeys = append(certKeys, append(h, order...))
			if revs.Get([]byte(c.Serial)) != nil {
				revokedKeys[string(h)] = []byte(c.Serial)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("building indexes: %w", err)
	}
	err = revs.ForEach(func(_, v []byte) error {
		r, err := decodeRevocation(v)
		if err != nil {
			return err
		}
		revExpiry = append(revExpiry, orderKey(r.NotAfter, r.Serial))
		return nil
	})
	if err != nil {
		return fmt.Errorf("building indexes: %w", err)
	}
	keys := make([][]byte, 0, len(revokedKeys))
	for h := range revokedKeys {
		keys = append(keys, []byte(h))
	}
	for _, ix := range []struct {
		bucket []byte
		keys   [][]byte
		value  func(k []byte) []byte
	}{
		{bucketCertificatesByExpiry, certExpiry, nil},
		{bucketCertificatesByKey, certKeys, nil},
		{bucketRevocationsByExpiry, revExpiry, nil},
		{bucketRevokedKeys, keys, func(k []byte) []byte { return revokedKeys[string(k)] }},
	} {
		slices.SortFunc(ix.keys, bytes.Compare)
		b := tx.Bucket(ix.bucket)
		for _, k := range ix.keys {
			v := empty
			if ix.value != nil {
				v = ix.value(k)
			}
			if err := b.Put(k, v); err != nil {
				return fmt.Errorf("building indexes: %w", err)
			}
		}
	}
	return tx.Bucket(bucketMeta).Put(keyFormat, []byte(strconv.Itoa(formatVersion)))
}

// span is a range of keys of an index in orderKey form: those from from
// on whose time (first timeKeyLen bytes) is at most to; nil to: no end.
type span struct{ from, to []byte }

// walkIndex calls fn, in key order, for the records of the bucket
// records whose serials the orderKey index lists within the spans. It
// reads listPageSize of them per read transaction and calls fn between
// transactions, as Certificates does. It returns false if fn stopped it.
func walkIndex[T any](b *Bolt, index, records []byte, spans []span, decode func([]byte) (*T, error), fn func(*T) bool) (bool, error) {
	for _, sp := range spans {
		var after []byte // the last index key read; nil before the first page
		for done := false; !done; {
			page := make([]*T, 0, listPageSize)
			if err := b.enter(); err != nil {
				return false, err
			}
			err := b.db.View(func(tx *bolt.Tx) error {
				recs, c := tx.Bucket(records), tx.Bucket(index).Cursor()
				var k []byte
				if after == nil {
					k, _ = c.Seek(sp.from)
				} else if k, _ = c.Seek(after); bytes.Equal(k, after) {
					k, _ = c.Next()
				}
				for ; len(page) < listPageSize; k, _ = c.Next() {
					if k == nil || sp.to != nil && bytes.Compare(k[:min(len(k), timeKeyLen)], sp.to) > 0 {
						done = true
						break
					}
					serial := orderKeySerial(k)
					v := recs.Get(serial)
					if v == nil {
						return fmt.Errorf("the index %s lists %s, which is not stored", index, serial)
					}
					rec, err := decode(v)
					if err != nil {
						return err
					}
					page = append(page, rec)
					after = bytes.Clone(k) // k points into the transaction's memory map
				}
				return nil
			})
			b.mu.RUnlock()
			if err != nil {
				return false, err
			}
			for _, r := range page {
				if !fn(r) {
					return false, nil
				}
			}
		}
	}
	return true, nil
}

// CertificatesExpiring implements [Store].
func (b *Bolt) CertificatesExpiring(from, to time.Time, fn func(*Certificate) bool) error {
	if b.legacy {
		return b.scanCertificates("listing expiring certificates", func(c *Certificate) bool {
			return !c.NotAfter.Before(from) && !c.NotAfter.After(to)
		}, fn)
	}
	if to.Before(from) {
		return nil
	}
	_, err := walkIndex(b, bucketCertificatesByExpiry, bucketCertificates, []span{{timeKey(from), timeKey(to)}}, decodeCertificate, fn)
	if err != nil {
		return fmt.Errorf("listing expiring certificates: %w", err)
	}
	return nil
}

// RevocationsUnexpired implements [Store].
func (b *Bolt) RevocationsUnexpired(at time.Time, fn func(*Revocation) bool) error {
	if b.legacy {
		revs, err := b.Revocations()
		return visitUnexpired(revs, err, at, fn)
	}
	// Revocations without a NotAfter (zero) first, then those from at on.
	zero := timeKey(time.Time{})
	spans := []span{{zero, zero}, {timeKey(at), nil}}
	if !at.After(time.Time{}) {
		spans = []span{{zero, nil}}
	}
	_, err := walkIndex(b, bucketRevocationsByExpiry, bucketRevocations, spans, decodeRevocation, fn)
	if err != nil {
		return fmt.Errorf("listing revocations: %w", err)
	}
	return nil
}

// CertificatesWithKey implements [Store].
func (b *Bolt) CertificatesWithKey(spki []byte, after time.Time) ([]*Certificate, error) {
	h := keyHash(spki)
	if b.legacy {
		var out []*Certificate
		err := b.scanCertificates("finding certificates by key", func(c *Certificate) bool {
			return c.NotAfter.After(after) && bytes.Equal(certificateKeyHash(c.DER), h)
		}, func(c *Certificate) bool { out = append(out, c); return true })
		return out, err
	}
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("finding certificates by key: %w", err)
	}
	defer b.mu.RUnlock()
	var out []*Certificate
	err := b.db.View(func(tx *bolt.Tx) error {
		certs, c := tx.Bucket(bucketCertificates), tx.Bucket(bucketCertificatesByKey).Cursor()
		// The first key at or after the time after, of this key.
		for k, _ := c.Seek(append(bytes.Clone(h), timeKey(after)...)); k != nil && bytes.HasPrefix(k, h); k, _ = c.Next() {
			order := k[keyHashLen:]
			if bytes.Compare(order[:min(len(order), timeKeyLen)], timeKey(after)) <= 0 {
				continue // expires exactly at after
			}
			serial := orderKeySerial(order)
			v := certs.Get(serial)
			if v == nil {
				return fmt.Errorf("the key index lists certificate %s, which is not stored", serial)
			}
			cert, err := decodeCertificate(v)
			if err != nil {
				return err
			}
			out = append(out, cert)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finding certificates by key: %w", err)
	}
	return out, nil
}

// RevokedKey implements [Store].
func (b *Bolt) RevokedKey(spki []byte) (string, error) {
	h := keyHash(spki)
	if b.legacy {
		revs, err := b.Revocations()
		if err != nil {
			return "", err
		}
		for _, r := range revs {
			c, err := b.Certificate(r.Serial)
			if errors.Is(err, ErrNotFound) {
				continue
			} else if err != nil {
				return "", err
			}
			if bytes.Equal(certificateKeyHash(c.DER), h) {
				return r.Serial, nil
			}
		}
		return "", nil
	}
	if err := b.enter(); err != nil {
		return "", fmt.Errorf("looking up revoked key: %w", err)
	}
	defer b.mu.RUnlock()
	var serial string
	err := b.db.View(func(tx *bolt.Tx) error {
		serial = string(tx.Bucket(bucketRevokedKeys).Get(h))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("looking up revoked key: %w", err)
	}
	return serial, nil
}

// scanCertificates reads every certificate (legacy files have no
// indexes) and calls fn, in NotAfter order and then numeric serial
// order, for those keep keeps.
func (b *Bolt) scanCertificates(op string, keep, fn func(*Certificate) bool) error {
	var out []*Certificate
	if err := b.Certificates(func(c *Certificate) bool {
		if keep(c) {
			out = append(out, c)
		}
		return true
	}); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	sortByExpiry(out)
	for _, c := range out {
		if !fn(c) {
			return nil
		}
	}
	return nil
}

// sortByExpiry sorts certificates as the expiry index orders them.
func sortByExpiry(certs []*Certificate) {
	slices.SortFunc(certs, func(a, b *Certificate) int {
		return bytes.Compare(orderKey(a.NotAfter, a.Serial), orderKey(b.NotAfter, b.Serial))
	})
}

// visitUnexpired calls fn with each revocation of revs a CRL at time at
// lists, in the order of the expiry index, until fn returns false: how a
// store with no expiry index (Memory, a legacy Bolt file) answers
// RevocationsUnexpired from all its revocations.
func visitUnexpired(revs []*Revocation, err error, at time.Time, fn func(*Revocation) bool) error {
	if err != nil {
		return err
	}
	for _, r := range unexpired(revs, at) {
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// unexpired keeps the revocations a CRL at time at lists, in the order of
// the expiry index.
func unexpired(revs []*Revocation, at time.Time) []*Revocation {
	revs = slices.DeleteFunc(revs, func(r *Revocation) bool { return !r.NotAfter.IsZero() && r.NotAfter.Before(at) })
	slices.SortFunc(revs, func(a, b *Revocation) int {
		return bytes.Compare(orderKey(a.NotAfter, a.Serial), orderKey(b.NotAfter, b.Serial))
	})
	return revs
}
