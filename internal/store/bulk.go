package store

import (
	"fmt"
	"os"

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

// CompactBolt rewrites the store file at path, which no one may have
// open, as bbolt's compaction does: every record in key order in full
// pages, and no free pages. It is for benchmarks and tools that fill a
// store with PutBulk: its large transactions leave many pages free, and
// every later commit writes the whole list of free pages, so a freshly
// filled file commits more slowly than one that grew a record at a time.
func CompactBolt(path string) error {
	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: defaultLockTimeout})
	if err != nil {
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	defer src.Close()
	tmp := path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	if err := bolt.Compact(dst, src, 64<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compacting %s: %w", path, err)
	}
	return nil
}
