package store

import (
	"errors"
	"time"

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

// CommitHooks are the commit loop's test hooks (see pacing): Received
// is called with the group's size each time the loop takes a write,
// Holding each time it starts to wait for announced writes (with the
// group's size), Committed after each commit with its size and whether it waited for
// announced writes, and Fail, when it returns an error, fails the commit
// it is called in (after the writes ran, as a failing fsync would).
type CommitHooks struct {
	Hold      time.Duration // how long a commit waits for announced writes
	Received  func(n int)
	Holding   func(n int)
	Committed func(n int, held bool)
	Fail      func() error
}

// SetCommitHooks installs h in b; call it before b's first write.
func SetCommitHooks(b *Bolt, h CommitHooks) {
	p := &b.pace
	if h.Hold > 0 {
		p.hold, p.busyHold = h.Hold, h.Hold
	}
	p.received, p.holding, p.committed = h.Received, h.Holding, h.Committed
	if h.Fail != nil {
		p.update = func(db *bolt.DB, fn func(*bolt.Tx) error) error {
			return db.Update(func(tx *bolt.Tx) error {
				if err := fn(tx); err != nil {
					return err
				}
				return h.Fail()
			})
		}
	}
}
