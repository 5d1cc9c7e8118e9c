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
