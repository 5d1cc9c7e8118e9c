package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// TokenCount returns how many token ids b remembers, checking that its
// two token buckets agree.
func TokenCount(b *Bolt) (int, error) {
	var n int
	err := b.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketTokens).Stats().KeyN
		if m := tx.Bucket(bucketTokensByExpiry).Stats().KeyN; m != n {
			return errors.New("token buckets disagree")
		}
		return nil
	})
	return n, err
}

// CheckBolt runs bbolt's consistency check on b's file.
func CheckBolt(b *Bolt) error {
	var errs []error
	err := b.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

// FormatVersion is the file format this package writes.
const FormatVersion = formatVersion

// Format returns the format version recorded in b's file.
func Format(b *Bolt) (string, error) {
	var v string
	err := b.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get(keyFormat))
		return nil
	})
	return v, err
}

// Downgrade turns the format 2 file at path into the format 1 file an
// older keyless would have written with the same records: the index
// buckets go, and the format says 1.
func Downgrade(path string) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range indexBuckets {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte("1"))
	})
	return errors.Join(err, db.Close())
}
