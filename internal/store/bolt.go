package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Layout of the bbolt file. Names and encodings are part of the file
// format: change them only with a new formatVersion.
var (
	// bucketMeta holds keyFormat.
	bucketMeta = []byte("meta")
	// bucketCertificates maps a serial to its JSON certRecord.
	bucketCertificates = []byte("certificates")
	// bucketCertificatesByTime has an empty value under orderKey(IssuedAt,
	// serial) for every certificate, for listing in issue order.
	bucketCertificatesByTime = []byte("certificates-by-time")
	// bucketTokens maps a used token id to timeKey(expires).
	bucketTokens = []byte("tokens")
	// bucketTokensByExpiry has an empty value under timeKey(expires)+id for
	// every used token id, for forgetting expired ids oldest first.
	bucketTokensByExpiry = []byte("tokens-by-expiry")
	// bucketRevocations maps a serial to its JSON revocationRecord.
	bucketRevocations = []byte("revocations")

	// Since format 2 (see index.go):
	//
	// bucketCertificatesByExpiry has an empty value under
	// orderKey(NotAfter, serial) for every certificate.
	bucketCertificatesByExpiry = []byte("certificates-by-expiry")
	// bucketCertificatesByKey has an empty value under keyHash(public
	// key)+orderKey(NotAfter, serial) for every certificate whose DER
	// holds a public key.
	bucketCertificatesByKey = []byte("certificates-by-key")
	// bucketRevokedKeys maps the keyHash of a revoked certificate's
	// public key to the serial of a revoked certificate that holds it.
	bucketRevokedKeys = []byte("revoked-keys")
	// bucketRevocationsByExpiry has an empty value under
	// orderKey(NotAfter, serial) for every revocation.
	bucketRevocationsByExpiry = []byte("revocations-by-expiry")

	// formatOneBuckets are the buckets of format 1; indexBuckets those
	// format 2 adds.
	formatOneBuckets = [][]byte{
		bucketMeta, bucketCertificates, bucketCertificatesByTime,
		bucketTokens, bucketTokensByExpiry, bucketRevocations,
	}
	indexBuckets = [][]byte{
		bucketCertificatesByExpiry, bucketCertificatesByKey,
		bucketRevokedKeys, bucketRevocationsByExpiry,
	}

	// keyFormat holds the file's formatVersion in decimal.
	keyFormat = []byte("format")
)

// formatVersion is the version of the file layout this package writes.
// Format 2 added the indexes of index.go; OpenBolt builds them in a
// format 1 file, which older keyless releases then refuse to open: they
// would not keep the indexes up to date.
const formatVersion = 2

const (
	// defaultLockTimeout: long enough to ride out an operator command that
	// is just finishing, short enough that a second CA started by mistake
	// fails at once with ErrLocked.
	defaultLockTimeout = time.Second

	// tokenGrace is how long after its expiry a token id is kept: a CA
	// whose clock steps back, or that accepts tokens with some leeway,
	// must still refuse a replay.
	tokenGrace = time.Hour

	// prunePerUse is how many expired token ids each UseToken forgets at
	// most. More than one, so forgetting outpaces recording and the
	// tokens bucket stays as large as the tokens still valid; few, so no
	// single write pays for a backlog.
	prunePerUse = 4

	// listPageSize is how many certificates Certificates reads per read
	// transaction. fn runs between transactions: a long-lived read
	// transaction would stall writers that need to grow the file.
	listPageSize = 256
)

// BoltOptions configures [OpenBolt]. The zero value is what the CA uses.
type BoltOptions struct {
	// LockTimeout is how long OpenBolt waits for another process to
	// release the file before it returns ErrLocked. Zero means one second.
	LockTimeout time.Duration

	// ReadOnly opens the file with a shared lock, for operator commands
	// that only read: several may hold it at once, but not while the CA
	// (or any writer) has it open. The file must already exist, and write
	// methods return an error.
	ReadOnly bool

	// Now returns the current time; it decides which token ids are old
	// enough to forget. Nil means time.Now.
	Now func() time.Time
}

// Bolt is the embedded Store: one bbolt file, locked by the process that
// opens it, synced to disk at every commit. Concurrent writes share
// commits (see commit.go). Use [OpenBolt] to get one.
type Bolt struct {
	db   *bolt.DB
	path string
	now  func() time.Time

	// mu is held for reading by every call while it uses db, and for
	// writing by Close, so that Close lets the calls under way (writes
	// waiting for a commit among them) finish.
	mu     sync.RWMutex
	closed bool

	// legacy is set when a format 1 file is open read-only, without the
	// indexes: the indexed lookups read everything instead.
	legacy bool

	writes   chan writeReq // to commitLoop; nil when read-only
	loopDone chan struct{} // closed when commitLoop returns
	pace     pacing        // announced writes and the commit loop's hooks (commit.go)
}

var _ Store = (*Bolt)(nil)

// allBuckets are the buckets of the current format (built when needed,
// not in every keyless command's package init).
func allBuckets() [][]byte { return append(slices.Clone(formatOneBuckets), indexBuckets...) }

// OpenBolt opens the store in the bbolt file at path, creating it with mode
// 0600 if it does not exist (unless opts.ReadOnly is set; then a missing
// file is an error that wraps fs.ErrNotExist). The directory must exist;
// checking the permissions of an existing file is the caller's job.
//
// The file is locked while it is open: exclusively, or shared with other
// read-only opens when opts.ReadOnly is set. If another process holds a
// conflicting lock for opts.LockTimeout, OpenBolt returns an error that
// wraps ErrLocked.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = defaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  timeout,
		ReadOnly: opts.ReadOnly,
		// The hash map freelist stays fast as the file grows and
		// fragments; bbolt means to make it the default.
		FreelistType: bolt.FreelistMapType,
		// NoSync stays false: a write that returned nil is on disk.
	})
	if errors.Is(err, berrors.ErrTimeout) {
		// Only another open file holds the lock: another process, or
		// another OpenBolt of this path in this one.
		return nil, fmt.Errorf("opening store %s: %w: %w", path, ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	var format int
	if opts.ReadOnly {
		err = db.View(func(tx *bolt.Tx) (err error) {
			format, err = checkLayout(tx)
			return err
		})
	} else {
		err = db.Update(initLayout)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}

	now := opts.Now
	if now == nil {
		now = time.Now
	}
	b := &Bolt{db: db, path: path, now: now, legacy: opts.ReadOnly && format < formatVersion}
	if !opts.ReadOnly {
		b.writes = make(chan writeReq, maxGroup)
		b.loopDone = make(chan struct{})
		b.pace.init()
		go b.commitLoop()
	}
	return b, nil
}

// initLayout creates the buckets of a new file, and checks those of an
// existing one.
func initLayout(tx *bolt.Tx) error {
	if tx.Bucket(bucketMeta) == nil {
		empty := true
		tx.ForEach(func([]byte, *bolt.Bucket) error {
			empty = false
			return nil
		})
		if !empty {
			return errors.New("the file is a bbolt database but not a keyless CA store")
		}
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("creating bucket %s: %w", name, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte(strconv.Itoa(formatVersion)))
	}
	format, err := checkLayout(tx)
	if err != nil || format == formatVersion {
		return err
	}
	return buildIndexes(tx)
}

// checkLayout checks that the file is a keyless store this code can read,
// and returns its format version.
func checkLayout(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, errors.New("the file is not a keyless CA store")
	}
	v, err := strconv.Atoi(string(meta.Get(keyFormat)))
	if err != nil || v < 1 {
		return 0, fmt.Errorf("the store's format version %q is not a positive number", meta.Get(keyFormat))
	}
	if v > formatVersion {
		return 0, fmt.Errorf("the store has format version %d; this keyless reads up to %d (it was written by a newer keyless)", v, formatVersion)
	}
	buckets := allBuckets()
	if v == 1 {
		buckets = formatOneBuckets
	}
	for _, name := range buckets {
		if tx.Bucket(name) == nil {
			return 0, fmt.Errorf("the store has no bucket %s", name)
		}
	}
	return v, nil
}

// Path returns the file the store was opened from.
func (b *Bolt) Path() string { return b.path }

// UseToken implements [Store]. It also forgets a few token ids whose
// expiry passed more than an hour ago, so the file does not grow forever.
func (b *Bolt) UseToken(id string, expires time.Time) error {
	if err := checkToken(id, expires); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return fmt.Errorf("recording token id: %w", err)
	}
	defer b.mu.RUnlock()
	key := []byte(id)
	spend := b.spender(id, expires)

	// A replay is refused without a commit. A read may see a write whose
	// commit has not yet returned; refusing on it is still right, since
	// only one UseToken of an id may ever return nil.
	var seen bool
	err := b.db.View(func(tx *bolt.Tx) error {
		seen = tx.Bucket(bucketTokens).Get(key) != nil
		return nil
	})
	switch {
	case err != nil:
		return fmt.Errorf("recording token id: %w", err)
	case seen:
		return fmt.Errorf("recording token id: %w", ErrTokenUsed)
	}

	// The function may run several times, in transactions that are rolled
	// back, before the one that commits, so it sets its result afresh on
	// every run and the last run decides. It reports a used id through
	// used rather than an error, because an error would roll back the
	// whole group commit and redo everyone's writes one by one.
	var used bool
	err = b.write(func(tx *bolt.Tx) error {
		used = false
		if tx.Bucket(bucketTokens).Get(key) != nil {
			used = true
			return nil
		}
		return spend(tx)
	})
	switch {
	case err != nil:
		return fmt.Errorf("recording token id: %w", err)
	case used:
		return fmt.Errorf("recording token id: %w", ErrTokenUsed)
	}
	return nil
}

// pruneTokens deletes up to n token ids whose expiry key is before cutoff,
// oldest first.
func pruneTokens(tokens, byExpiry *bolt.Bucket, cutoff []byte, n int) error {
	c := byExpiry.Cursor()
	for range n {
		k, _ := c.First()
		if k == nil || bytes.Compare(k[:min(len(k), timeKeyLen)], cutoff) >= 0 {
			return nil
		}
		if len(k) > timeKeyLen {
			if err := tokens.Delete(k[timeKeyLen:]); err != nil {
				return fmt.Errorf("forgetting expired token id: %w", err)
			}
		}
		if err := c.Delete(); err != nil {
			return fmt.Errorf("forgetting expired token id: %w", err)
		}
	}
	return nil
}

// spender returns what records token id as spent, until expires (plus
// the grace), in a write transaction, pruning some expired ids as it goes.
func (b *Bolt) spender(id string, expires time.Time) func(tx *bolt.Tx) error {
	key, exp := []byte(id), timeKey(expires)
	expKey := append(timeKey(expires), id...)
	cutoff := timeKey(b.now().Add(-tokenGrace))
	return func(tx *bolt.Tx) error {
		tokens, byExpiry := tx.Bucket(bucketTokens), tx.Bucket(bucketTokensByExpiry)
		if err := tokens.Put(key, exp); err != nil {
			return err
		}
		if err := byExpiry.Put(expKey, []byte{}); err != nil {
			return err
		}
		return pruneTokens(tokens, byExpiry, cutoff, prunePerUse)
	}
}

// PutCertificate implements [Store].
func (b *Bolt) PutCertificate(c *Certificate) error { return putCertificate(b, c, "", time.Time{}) }

// IssueCertificate implements [Store]: UseToken and PutCertificate in one
// transaction, so signing costs one commit.
func (b *Bolt) IssueCertificate(c *Certificate, tokenID string, expires time.Time) error {
	return issueCertificate(b, c, tokenID, expires)
}

// putCertificate stores a certificate's record and, unless tokenID is
// empty, spends the token that paid for it, in one transaction.
func (b *Bolt) putCertificate(c *Certificate, value []byte, tokenID string, expires time.Time) error {
	if err := b.enter(); err != nil {
		return fmt.Errorf("storing certificate %s: %w", c.Serial, err)
	}
	defer b.mu.RUnlock()
	tokKey, spend := []byte(tokenID), b.spender(tokenID, expires)
	key := []byte(c.Serial)

	// As in UseToken: every run sets the results afresh, the last run
	// decides, and a spent token or a stored serial is a result that rolls
	// back nothing of the others in the group.
	var used, exists bool
	err := b.write(func(tx *bolt.Tx) error {
		used, exists = false, false
		tokens, certs := tx.Bucket(bucketTokens), tx.Bucket(bucketCertificates)
		if tokenID != "" && tokens.Get(tokKey) != nil {
			used = true
			return nil
		}
		if certs.Get(key) != nil {
			exists = true
			return nil
		}
		if err := putCertificateTx(tx, c, value); err != nil {
			return err
		}
		if tokenID == "" {
			return nil
		}
		return spend(tx)
	})
	switch {
	case err != nil:
		return fmt.Errorf("storing certificate %s: %w", c.Serial, err)
	case used:
		return fmt.Errorf("recording token id: %w", ErrTokenUsed)
	case exists:
		return fmt.Errorf("storing certificate %s: %w", c.Serial, ErrExists)
	}
	return nil
}

// putCertificateTx stores a certificate's record and its index entries.
// A stored serial is an error that wraps ErrExists.
func putCertificateTx(tx *bolt.Tx, c *Certificate, value []byte) error {
	certs, key := tx.Bucket(bucketCertificates), []byte(c.Serial)
	if certs.Get(key) != nil {
		return fmt.Errorf("storing certificate %s: %w", c.Serial, ErrExists)
	}
	if err := certs.Put(key, value); err != nil {
		return err
	}
	if err := tx.Bucket(bucketCertificatesByTime).Put(orderKey(c.IssuedAt, c.Serial), []byte{}); err != nil {
		return err
	}
	return indexCertificate(tx, c)
}

// Certificate implements [Store].
func (b *Bolt) Certificate(serial string) (*Certificate, error) {
	return lookup(b, bucketCertificates, "certificate", serial, decodeCertificate)
}

// lookup reads one record by serial from a bucket, or ErrNotFound.
func lookup[T any](b *Bolt, bucket []byte, what, serial string, decode func([]byte) (*T, error)) (*T, error) {
	if err := checkSerial(serial); err != nil {
		return nil, fmt.Errorf("looking up %s: %w", what, err)
	}
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("looking up %s %s: %w", what, serial, err)
	}
	defer b.mu.RUnlock()
	var rec *T
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(serial))
		if v == nil {
			return ErrNotFound
		}
		var err error
		rec, err = decode(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, serial, err)
	}
	return rec, nil
}

// Certificates implements [Store]. It reads the certificates a page at a
// time and calls fn between read transactions.
func (b *Bolt) Certificates(fn func(*Certificate) bool) error {
	var after []byte // the last index key read; nil before the first page
	for {
		page := make([]*Certificate, 0, listPageSize)
		if err := b.enter(); err != nil {
			return fmt.Errorf("listing certificates: %w", err)
		}
		err := b.db.View(func(tx *bolt.Tx) error {
			certs := tx.Bucket(bucketCertificates)
			c := tx.Bucket(bucketCertificatesByTime).Cursor()
			var k []byte
			if after == nil {
				k, _ = c.First()
			} else if k, _ = c.Seek(after); bytes.Equal(k, after) {
				k, _ = c.Next()
			}
			var last []byte
			for ; k != nil && len(page) < listPageSize; k, _ = c.Next() {
				serial := orderKeySerial(k)
				v := certs.Get(serial)
				if v == nil {
					return fmt.Errorf("the issue-order index lists certificate %s, which is not stored", serial)
				}
				cert, err := decodeCertificate(v)
				if err != nil {
					return err
				}
				page = append(page, cert)
				last = k
			}
			if last != nil {
				after = bytes.Clone(last) // k points into the transaction's memory map
			}
			return nil
		})
		b.mu.RUnlock()
		if err != nil {
			return fmt.Errorf("listing certificates: %w", err)
		}
		for _, c := range page {
			if !fn(c) {
				return nil
			}
		}
		if len(page) < listPageSize {
			return nil
		}
	}
}

// Revoke implements [Store].
func (b *Bolt) Revoke(r *Revocation) error {
	value, err := prepareRevocation(r)
	if err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return fmt.Errorf("recording revocation of %s: %w", r.Serial, err)
	}
	defer b.mu.RUnlock()
	err = b.write(func(tx *bolt.Tx) error { return revokeTx(tx, r, value) })
	if err != nil {
		return fmt.Errorf("recording revocation of %s: %w", r.Serial, err)
	}
	return nil
}

// revokeTx records a revocation, unless the serial is revoked already.
func revokeTx(tx *bolt.Tx, r *Revocation, value []byte) error {
	revs, key := tx.Bucket(bucketRevocations), []byte(r.Serial)
	if revs.Get(key) != nil {
		return nil // the first record stands
	}
	if err := revs.Put(key, value); err != nil {
		return err
	}
	return indexRevocation(tx, r)
}

// Revocation implements [Store].
func (b *Bolt) Revocation(serial string) (*Revocation, error) {
	return lookup(b, bucketRevocations, "revocation of", serial, decodeRevocation)
}

// Revocations implements [Store].
func (b *Bolt) Revocations() ([]*Revocation, error) {
	if err := b.enter(); err != nil {
		return nil, fmt.Errorf("listing revocations: %w", err)
	}
	defer b.mu.RUnlock()
	var values [][]byte
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRevocations).ForEach(func(_, v []byte) error {
			values = append(values, bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing revocations: %w", err)
	}
	return decodeRevocations(values)
}

// enter read-locks b.mu for a call, or returns an error if b is closed.
// On nil the caller must b.mu.RUnlock().
func (b *Bolt) enter() error {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return errClosed
	}
	return nil
}

// Close implements [Store]. It waits for the calls under way to finish.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.writes != nil {
		close(b.writes)
		<-b.loopDone
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("closing store %s: %w", b.path, err)
	}
	return nil
}
