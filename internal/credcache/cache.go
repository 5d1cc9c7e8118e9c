// Package credcache keeps temporary AWS credentials on disk between runs of
// keyless, so that a tool which asks for credentials on every command (the
// AWS CLI runs credential_process each time) costs one CreateSession per
// credential lifetime instead of one per command.
//
// One file per Key, 0600 in a 0700 directory owned by the user, written
// atomically. Credentials are reused while more than MinRemaining of their
// life is left. Processes that miss at the same time take a lock on the
// directory, so only one of them calls CreateSession and the others read
// its result. Any problem with the cache (unreadable directory, corrupt
// file, lock timeout) degrades to fetching fresh credentials, never to a
// failure. It is used by credential-process and, later, the agent.
package credcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/jsonstr"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// DefaultMinRemaining is how much life cached credentials must have left
// to be reused. botocore refreshes 15 minutes before expiry (advisory) and
// treats less than 10 as urgent; handing it less than 15 would make it ask
// again at once, so 15 minutes is the floor.
const DefaultMinRemaining = 15 * time.Minute

// DefaultLockTimeout bounds the wait for another process's CreateSession.
// The slowest fetch the client allows is three 15-second attempts with up
// to two 20-second Retry-After waits (85 s); two minutes covers it, so
// waiters do not give up and call CreateSession themselves just when the
// service is throttling.
const DefaultLockTimeout = 2 * time.Minute

const entryVersion = 1

// Key identifies one set of credentials: everything that changes what
// CreateSession would return.
type Key struct {
	// Certificate is the certificate's fingerprint (identity.Fingerprint),
	// so a renewed certificate never reuses the old one's credentials.
	Certificate     string `json:"certificate"`
	TrustAnchorARN  string `json:"trustAnchorArn"`
	ProfileARN      string `json:"profileArn"`
	RoleARN         string `json:"roleArn"`
	DurationSeconds int    `json:"durationSeconds"`
	RoleSessionName string `json:"roleSessionName"`
	Region          string `json:"region"`
	Endpoint        string `json:"endpoint"`
	// Trust identifies how the endpoint's TLS certificate was checked (for
	// example a hash of the CA bundle file's path and identity: device,
	// inode, size, modification and change times, which awscreds checks
	// with one stat on a hit instead of hashing the bundle), so
	// credentials fetched under one trust configuration are never handed
	// out under another.
	Trust string `json:"trust"`
	// PrivateKey is a hash of the private key file the credentials were
	// fetched with (empty when the key is in the certificate's PKCS#12
	// file, which Certificate covers). A changed or different key file
	// is a miss, and the miss loads the pair and finds a key that no
	// longer matches at once, not when the credentials run out; hashing
	// the file, rather than decrypting it, keeps a hit free of the
	// password's KDF.
	PrivateKey string `json:"privateKey,omitempty"`
	// CertificatePath is where the certificate was read from. It is not
	// part of the identity of the entry; it lets a new certificate at the
	// same path discard the old certificate's credentials.
	CertificatePath string `json:"certificatePath"`
}

func (k Key) withoutPath() Key {
	k.CertificatePath = ""
	return k
}

func (k Key) filename() string {
	sum := sha256.Sum256(k.withoutPath().appendJSON(make([]byte, 0, 512)))
	return hex.EncodeToString(sum[:16]) + ".json"
}

// appendJSON appends k as json.Marshal writes it (the test holds it to
// that), without the reflection json.Marshal's first call of a type
// costs: filename runs on every cache hit.
func (k Key) appendJSON(b []byte) []byte {
	b = append(b, `{"certificate":`...)
	b = jsonstr.Append(b, k.Certificate)
	b = append(b, `,"trustAnchorArn":`...)
	b = jsonstr.Append(b, k.TrustAnchorARN)
	b = append(b, `,"profileArn":`...)
	b = jsonstr.Append(b, k.ProfileARN)
	b = append(b, `,"roleArn":`...)
	b = jsonstr.Append(b, k.RoleARN)
	b = append(b, `,"durationSeconds":`...)
	b = strconv.AppendInt(b, int64(k.DurationSeconds), 10)
	b = append(b, `,"roleSessionName":`...)
	b = jsonstr.Append(b, k.RoleSessionName)
	b = append(b, `,"region":`...)
	b = jsonstr.Append(b, k.Region)
	b = append(b, `,"endpoint":`...)
	b = jsonstr.Append(b, k.Endpoint)
	b = append(b, `,"trust":`...)
	b = jsonstr.Append(b, k.Trust)
	if k.PrivateKey != "" {
		b = append(b, `,"privateKey":`...)
		b = jsonstr.Append(b, k.PrivateKey)
	}
	b = append(b, `,"certificatePath":`...)
	b = jsonstr.Append(b, k.CertificatePath)
	return append(b, '}')
}

type entry struct {
	Version         int       `json:"version"`
	Key             Key       `json:"key"`
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	SessionToken    string    `json:"sessionToken"`
	Expiration      time.Time `json:"expiration"`
}

// Cache is a credentials cache in a directory. The zero value is not
// usable: set Dir.
type Cache struct {
	Dir string
	// MinRemaining defaults to DefaultMinRemaining.
	MinRemaining time.Duration
	// LockTimeout defaults to DefaultLockTimeout.
	LockTimeout time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// Logger receives warnings about an unusable cache and debug lines
	// about hits and misses; nil discards. Credentials are never logged.
	Logger *slog.Logger

	// waiting, when set (by tests), is called once per lock attempt that
	// has to wait for another holder: the event a test waits on to know
	// that callers queue behind a fetch.
	waiting func()
}

// DefaultDir returns $XDG_CACHE_HOME/keyless, or ~/.cache/keyless.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "keyless"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "keyless"), nil
}

// statDir makes the directory (0700) when create is set and it is missing,
// and returns its own information: a symlink is not followed, and is not a
// directory.
func (c *Cache) statDir(create bool) (fs.FileInfo, error) {
	if c.Dir == "" {
		return nil, errors.New("no cache directory set")
	}
	if create {
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return nil, err
		}
	}
	info, err := os.Lstat(c.Dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory (symlinks are not followed)", c.Dir)
	}
	return info, nil
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) logger() *slog.Logger { return logline.Or(c.Logger) }

func (c *Cache) minRemaining() time.Duration {
	if c.MinRemaining > 0 {
		return c.MinRemaining
	}
	return DefaultMinRemaining
}

// Get returns the cached credentials for key if they have more than
// MinRemaining left.
func (c *Cache) Get(key Key) (sigv4.Credentials, bool) {
	if err := c.checkDir(false); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.logger().Warn("not using the credentials cache", "dir", c.Dir, "reason", err.Error())
		}
		return sigv4.Credentials{}, false
	}
	return c.get(key)
}

func (c *Cache) get(key Key) (sigv4.Credentials, bool) {
	path := filepath.Join(c.Dir, key.filename())
	e, err := readEntry(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.logger().Debug("ignoring cache entry", "file", path, "reason", err.Error())
		}
		return sigv4.Credentials{}, false
	}
	if e.Key.withoutPath() != key.withoutPath() {
		c.logger().Debug("ignoring cache entry for another key", "file", path)
		return sigv4.Credentials{}, false
	}
	left := e.Expiration.Sub(c.now())
	if left <= c.minRemaining() {
		c.logger().Debug("cached credentials too close to expiry", "file", path, "expires_in", left.Round(time.Second))
		return sigv4.Credentials{}, false
	}
	c.logger().Debug("using cached credentials", "file", path, "expires_in", left.Round(time.Second))
	return sigv4.Credentials{AccessKeyID: e.AccessKeyID, SecretAccessKey: e.SecretAccessKey, SessionToken: e.SessionToken, Expiration: e.Expiration}, true
}

// GetOrFetch returns cached credentials for key, or calls fetch and caches
// its result. hit reports whether the credentials came from the cache
// (including from another process that fetched while this one waited).
// Only fetch's error is returned: cache problems are logged and bypassed.
func (c *Cache) GetOrFetch(ctx context.Context, key Key, fetch func(context.Context) (sigv4.Credentials, error)) (creds sigv4.Credentials, hit bool, err error) {
	if creds, ok := c.Get(key); ok {
		return creds, true, nil
	}
	if err := c.checkDir(true); err != nil {
		c.logger().Warn("not using the credentials cache", "dir", c.Dir, "reason", err.Error())
		creds, err := fetch(ctx)
		return creds, false, err
	}
	unlock, err := c.lock(ctx)
	if err != nil {
		c.logger().Warn("fetching without the cache lock", "dir", c.Dir, "reason", err.Error())
	} else {
		defer unlock()
		// Another process may have fetched while this one waited.
		if creds, ok := c.get(key); ok {
			return creds, true, nil
		}
	}
	creds, err = fetch(ctx)
	if err != nil {
		return creds, false, err
	}
	if left := creds.Expiration.Sub(c.now()); left <= c.minRemaining() {
		c.logger().Warn("these credentials last too little to be reused: every call will call CreateSession; ask for a longer session (and raise the profile's durationSeconds)",
			"lifetime", left.Round(time.Second), "reused_only_with_more_than", c.minRemaining())
	}
	if err := c.put(key, creds); err != nil {
		c.logger().Warn("could not cache the credentials", "dir", c.Dir, "reason", err.Error())
	}
	return creds, false, nil
}

func (c *Cache) put(key Key, creds sigv4.Credentials) error {
	data, err := json.Marshal(entry{
		Version: entryVersion, Key: key,
		AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken,
		Expiration: creds.Expiration.UTC(),
	})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(c.Dir, key.filename()), data, 0o600); err != nil {
		return err
	}
	c.prune(key)
	return nil
}

// prune removes entries that can never be used again (expired ones,
// unreadable ones, and those of another certificate that was read from the
// same path: the file now holds a new certificate, so they are stale) and
// temporary files left by killed processes.
func (c *Cache) prune(current Key) {
	names, err := os.ReadDir(c.Dir)
	if err != nil {
		return
	}
	now := c.now()
	keep := current.filename()
	for _, d := range names {
		name := d.Name()
		// Only names the cache makes: --cache-dir may name a directory
		// that holds other files too.
		if target, ok := strings.CutPrefix(name, atomicfile.TempPrefix); ok {
			// Left by a process killed while writing an entry (a live
			// writer's is kept: it holds it locked).
			if i := strings.LastIndexByte(target, '-'); i > 0 && isEntryName(target[:i]) {
				atomicfile.Cleanup(filepath.Join(c.Dir, target[:i]))
			}
			continue
		}
		if name == keep || !isEntryName(name) {
			continue
		}
		path := filepath.Join(c.Dir, name)
		e, err := readEntry(path)
		reason := ""
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			reason = err.Error()
		case !e.Expiration.After(now):
			reason = "expired"
		case current.CertificatePath != "" && e.Key.CertificatePath == current.CertificatePath && e.Key.Certificate != current.Certificate:
			reason = "the certificate at " + current.CertificatePath + " changed"
		case current.CertificatePath != "" && e.Key.CertificatePath == current.CertificatePath && e.Key.PrivateKey != current.PrivateKey:
			reason = "the private key for " + current.CertificatePath + " changed"
		default:
			continue
		}
		if os.Remove(path) == nil {
			c.logger().Debug("removed cache entry", "file", path, "reason", reason)
		}
	}
}

// isEntryName reports whether name is one Key.filename makes.
func isEntryName(name string) bool {
	hash, ok := strings.CutSuffix(name, ".json")
	if !ok || len(hash) != 32 {
		return false
	}
	for _, c := range hash {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func readEntry(path string) (*entry, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	e, ok := parseEntry(data)
	if !ok {
		e = entry{}
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("corrupt cache entry: %v", err)
		}
	}
	if e.Version != entryVersion || e.AccessKeyID == "" || e.SecretAccessKey == "" || e.SessionToken == "" || e.Expiration.IsZero() {
		return nil, errors.New("incomplete cache entry")
	}
	return &e, nil
}

// parseEntry reads an entry written as put writes it (json.Marshal of
// entry) whose strings are printable ASCII with nothing escaped, as
// entries are: reading it with encoding/json would cost a hit the
// reflection of its first Unmarshal of the type. It returns false for
// anything else, which readEntry leaves to encoding/json; whenever it
// returns true, json.Unmarshal reads the same entry (the fuzz test holds
// it to that).
func parseEntry(data []byte) (e entry, ok bool) {
	p := entryParser{data: data}
	k := &e.Key
	ok = p.lit(`{"version":`) && p.int(&e.Version) &&
		p.lit(`,"key":{"certificate":`) && p.str(&k.Certificate) &&
		p.lit(`,"trustAnchorArn":`) && p.str(&k.TrustAnchorARN) &&
		p.lit(`,"profileArn":`) && p.str(&k.ProfileARN) &&
		p.lit(`,"roleArn":`) && p.str(&k.RoleARN) &&
		p.lit(`,"durationSeconds":`) && p.int(&k.DurationSeconds) &&
		p.lit(`,"roleSessionName":`) && p.str(&k.RoleSessionName) &&
		p.lit(`,"region":`) && p.str(&k.Region) &&
		p.lit(`,"endpoint":`) && p.str(&k.Endpoint) &&
		p.lit(`,"trust":`) && p.str(&k.Trust) &&
		(!p.lit(`,"privateKey":`) || p.str(&k.PrivateKey)) &&
		p.lit(`,"certificatePath":`) && p.str(&k.CertificatePath) &&
		p.lit(`},"accessKeyId":`) && p.str(&e.AccessKeyID) &&
		p.lit(`,"secretAccessKey":`) && p.str(&e.SecretAccessKey) &&
		p.lit(`,"sessionToken":`) && p.str(&e.SessionToken) &&
		p.lit(`,"expiration":`) && p.time(&e.Expiration) &&
		p.lit(`}`) && len(p.data) == 0
	return e, ok
}

// entryParser consumes data from the front.
type entryParser struct{ data []byte }

// lit consumes s if data starts with it.
func (p *entryParser) lit(s string) bool {
	if !bytes.HasPrefix(p.data, []byte(s)) {
		return false
	}
	p.data = p.data[len(s):]
	return true
}

// quoted consumes a string of printable ASCII other than " and \,
// quotes included, and returns it with its quotes.
func (p *entryParser) quoted() ([]byte, bool) {
	if len(p.data) == 0 || p.data[0] != '"' {
		return nil, false
	}
	for i := 1; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			q := p.data[:i+1]
			p.data = p.data[i+1:]
			return q, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (p *entryParser) str(v *string) bool {
	q, ok := p.quoted()
	if ok {
		*v = string(q[1 : len(q)-1])
	}
	return ok
}

// time reads a time as encoding/json does: by time.Time's UnmarshalJSON.
func (p *entryParser) time(v *time.Time) bool {
	q, ok := p.quoted()
	return ok && v.UnmarshalJSON(q) == nil
}

// int reads a JSON integer: no leading zeros, no fraction or exponent,
// in range.
func (p *entryParser) int(v *int) bool {
	n := 0
	if n < len(p.data) && p.data[n] == '-' {
		n++
	}
	digits := n
	for n < len(p.data) && '0' <= p.data[n] && p.data[n] <= '9' {
		n++
	}
	if n == digits || p.data[digits] == '0' && n > digits+1 {
		return false
	}
	i, err := strconv.Atoi(string(p.data[:n]))
	if err != nil {
		return false
	}
	*v, p.data = i, p.data[n:]
	return true
}
