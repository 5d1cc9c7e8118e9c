package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// PutBulk stores many certificates and revocations in one transaction and
// one commit, for benchmarks and tools that fill a store: recording them
// one by one costs a commit (an fsync) each. It keeps the contracts of
// PutCertificate and Revoke for each record, except that a stored serial
// among certs is an error (wrapping ErrExists) that stores none of them.
func (b *Bolt) PutBulk(certs []*Certificate, revs []*Revocation) error {
	type rec struct {
		c     *Certificate
		value []byte
	}
	cs := make([]rec, len(certs))
	for i, c := range certs {
		v, err := prepareCertificate(c)
		if err != nil {
			return err
		}
		cs[i] = rec{c, v}
	}
	rs := make([][]byte, len(revs))
	for i, r := range revs {
		v, err := prepareRevocation(r)
		if err != nil {
			return err
		}
		rs[i] = v
	}
	if err := b.enter(); err != nil {
		return fmt.Errorf("storing certificates: %w", err)
	}
	defer b.mu.RUnlock()
	if b.writes == nil {
		return fmt.Errorf("store %s is open read-only", b.path)
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		for _, r := range cs {
			if err := putCertificateTx(tx, r.c, r.value); err != nil {
				return err
			}
		}
		for i, r := range revs {
			if err := revokeTx(tx, r, rs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}
