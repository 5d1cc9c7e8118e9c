// Package awscreds gets temporary AWS credentials for a certificate
// through IAM Roles Anywhere, as keyless credential-process does: it
// checks the request (ARNs in one account, region and partition, the
// duration, the session name) before anything is read or sent, resolves
// the endpoint (the request's, else AWS_ENDPOINT_URL_ROLESANYWHERE, else
// the region's), decides whom to trust (AWS_CA_BUNDLE or the system
// roots), and fetches through the credentials cache, whose key covers all
// of that.
//
// It is a use case: credential-process, keyless dev and the agent's
// broker call it. Input errors are *InputError, naming the field; what
// the service or the network refused comes back as rolesanywhere's typed
// errors.
package awscreds

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/credcache"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Request is what to get credentials for, as credential-process's flags
// say it.
type Request struct {
	// Files are the certificate, key and intermediates; Password is
	// asked for an encrypted key or PKCS#12 file (nil: none available).
	Files    identity.Files
	Password identity.PasswordFunc

	TrustAnchorARN, ProfileARN, RoleARN string
	// DurationSeconds is the credentials' lifetime, 900 to 43200.
	DurationSeconds int
	SessionName     string
	// Region overrides the trust anchor ARN's (and must agree with it).
	Region string
	// Endpoint overrides AWS_ENDPOINT_URL_ROLESANYWHERE and the region's.
	Endpoint string

	// InsecureSkipVerify does not check the endpoint's TLS certificate;
	// such credentials are never cached.
	InsecureSkipVerify bool
	// UseProxy sends CreateSession through HTTPS_PROXY.
	UseProxy bool
	// NoCache neither reads nor writes the cache; CacheDir overrides its
	// default directory ($XDG_CACHE_HOME/keyless).
	NoCache  bool
	CacheDir string
	// MaxAttempts bounds CreateSession attempts for one Fetch; zero
	// means rolesanywhere's default. The agent's broker asks for one:
	// it retries itself, under its rate limit.
	MaxAttempts int
}

// InputError is a request refused before anything is read or sent.
// Field is the field at fault: the flag's name without its dashes
// ("role-arn") or an environment variable ("AWS_CA_BUNDLE"). The message
// names fields as Fetcher.Name renders them, so the CLI's say "--role-arn"
// and the agent's its configuration keys.
type InputError struct {
	Field string
	Err   error
}

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Plan is a checked request: what will be sent where, trusting whom.
type Plan struct {
	Input            rolesanywhere.SessionInput
	Region, Endpoint string
	Transport        rolesanywhere.TransportOptions
	// Trust names the roots: "system roots", or the CA bundle's hash
	// (or, when the bundle is still to be read, its file's identity).
	Trust string
	// rootsPath is AWS_CA_BUNDLE's file, when Transport.RootCAs is
	// still to be read from it.
	rootsPath string
}

// Fetcher gets credentials. The zero value works: real clock, the
// process's environment, fields named as they are, no logging.
type Fetcher struct {
	Clock clock.Clock
	// Name renders a field's name in messages; nil leaves it as it is.
	Name func(field string) string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv    func(string) string
	Logger    *slog.Logger
	UserAgent string
	// Clients, when set, shares HTTP connections between Fetches that
	// call CreateSession with the same transport options (the agent's,
	// one session per job); nil makes a client for each call.
	Clients *rolesanywhere.HTTPClients
}

func (f *Fetcher) getenv(k string) string {
	if f.Getenv == nil {
		return os.Getenv(k)
	}
	return f.Getenv(k)
}

// fail returns an InputError for field; the message names fields through
// f.name.
func (f *Fetcher) fail(field, format string, args ...any) error {
	return &InputError{Field: field, Err: fmt.Errorf(format, args...)}
}

func (f *Fetcher) name(field string) string {
	if f.Name == nil {
		return field
	}
	return f.Name(field)
}

func (f *Fetcher) logger() *slog.Logger { return logline.Or(f.Logger) }

// Check validates r and resolves its region, endpoint and trust, reading
// nothing but AWS_CA_BUNDLE.
func (f *Fetcher) Check(r Request) (*Plan, error) {
	return f.check(r, true)
}

// check is Check; without loadRoots, a regular AWS_CA_BUNDLE file that
// has not changed for bundleSettle is only stat'ed for Plan.Trust
// (fileIdentity.trust), not read: a cache hit needs only its identity,
// and a system bundle is a few hundred kilobytes that would otherwise be
// read and hashed on every hit (readBundle reads it on a miss).
func (f *Fetcher) check(r Request, loadRoots bool) (*Plan, error) {
	n := f.name
	var missing []string
	for _, v := range []struct{ field, v string }{
		{"certificate", r.Files.Certificate}, {"trust-anchor-arn", r.TrustAnchorARN}, {"profile-arn", r.ProfileARN}, {"role-arn", r.RoleARN},
	} {
		if v.v == "" {
			missing = append(missing, n(v.field))
		}
	}
	if len(missing) > 0 {
		return nil, f.fail("missing", "missing %s", strings.Join(missing, ", "))
	}
	ta, err := rolesanywhere.ParseTrustAnchorARN(r.TrustAnchorARN)
	if err != nil {
		return nil, f.fail("trust-anchor-arn", "%s: %w", n("trust-anchor-arn"), err)
	}
	prof, err := rolesanywhere.ParseProfileARN(r.ProfileARN)
	if err != nil {
		return nil, f.fail("profile-arn", "%s: %w", n("profile-arn"), err)
	}
	role, err := rolesanywhere.ParseRoleARN(r.RoleARN)
	if err != nil {
		return nil, f.fail("role-arn", "%s: %w", n("role-arn"), err)
	}
	switch {
	case ta.Region != prof.Region:
		return nil, f.fail("profile-arn", "%s is in %s but %s is in %s; both must be in the same region", n("trust-anchor-arn"), ta.Region, n("profile-arn"), prof.Region)
	case ta.Account != prof.Account:
		return nil, f.fail("profile-arn", "%s is in account %s but %s is in account %s; both must be in the same account", n("trust-anchor-arn"), ta.Account, n("profile-arn"), prof.Account)
	case ta.Partition != prof.Partition || ta.Partition != role.Partition:
		return nil, f.fail("role-arn", "the ARNs are in different partitions (%s, %s, %s)", ta.Partition, prof.Partition, role.Partition)
	}
	p := &Plan{Region: ta.Region, Trust: "system roots",
		Transport: rolesanywhere.TransportOptions{InsecureSkipVerify: r.InsecureSkipVerify, UseProxy: r.UseProxy}}
	if r.Region != "" {
		if !rolesanywhere.ValidRegion(r.Region) {
			return nil, f.fail("region", "%s %q is not an AWS region name", n("region"), r.Region)
		}
		if r.Region != ta.Region {
			return nil, f.fail("region", "%s %s contradicts the trust anchor's region %s; drop %[1]s or fix the ARNs", n("region"), r.Region, ta.Region)
		}
	}
	if r.DurationSeconds < rolesanywhere.MinDurationSeconds || r.DurationSeconds > rolesanywhere.MaxDurationSeconds {
		return nil, f.fail("session-duration", "%s %d: must be %d to %d seconds (15 minutes to 12 hours)", n("session-duration"), r.DurationSeconds, rolesanywhere.MinDurationSeconds, rolesanywhere.MaxDurationSeconds)
	}
	if r.SessionName != "" && !rolesanywhere.ValidSessionName(r.SessionName) {
		return nil, f.fail("role-session-name", "%s %q: must be 2 to 64 characters of letters, digits and +=,.@_-", n("role-session-name"), r.SessionName)
	}
	if p.Endpoint, err = f.endpoint(r.Endpoint, p.Region); err != nil {
		return nil, err
	}
	if path := f.getenv("AWS_CA_BUNDLE"); path != "" {
		identified := false
		if !loadRoots {
			info, err := os.Stat(path)
			if err != nil {
				return nil, f.fail("AWS_CA_BUNDLE", "AWS_CA_BUNDLE: %w", err)
			}
			if id, ok := fileID(info); ok && info.Mode().IsRegular() && id.settled(clock.Or(f.Clock).Now()) {
				p.Trust, p.rootsPath, identified = id.trust(path), path, true
			}
		}
		if !identified {
			// Needed now, or not a file whose identity says what it
			// holds (a pipe, a system without change times, a file
			// changed moments ago): read it.
			if p.Transport.RootCAs, err = os.ReadFile(path); err != nil {
				return nil, f.fail("AWS_CA_BUNDLE", "AWS_CA_BUNDLE: %w", err)
			}
			p.Trust = bundleTrust(p.Transport.RootCAs)
		}
	}
	p.Input = rolesanywhere.SessionInput{TrustAnchorARN: r.TrustAnchorARN, ProfileARN: r.ProfileARN, RoleARN: r.RoleARN,
		DurationSeconds: r.DurationSeconds, RoleSessionName: r.SessionName}
	return p, nil
}

// bundleTrust names the trust given by a CA bundle: its SHA-256.
func bundleTrust(pem []byte) string {
	sum := sha256.Sum256(pem)
	return "ca-bundle " + hex.EncodeToString(sum[:])
}

// fileIdentity is what one stat says of a CA bundle file (fileID reads
// it from the file's information where the system has change times).
type fileIdentity struct {
	dev, ino     uint64
	size         int64
	mtime, ctime time.Time
}

// trust names the trust given by the CA bundle file at path with this
// identity, for the cache key: a hash of the path and the identity.
//
// A cache hit trusts this in place of the bundle's content (hashing a
// system bundle of a few hundred kilobytes was a third of a hit). Any
// change to the file changes the identity: the kernel sets the change
// time (ctime) on every write, rename over, chmod or link, and no user
// can set it back, unlike the modification time (touch -d); a file
// renamed over the path is another inode. What the identity cannot
// tell apart is a write in the same tick of the file system's clock as
// the ctime it replaced (a tick is a few milliseconds, up to 2 seconds
// on FAT), so the identity is used only for a bundle that has settled
// (its ctime is more than bundleSettle before the clock): any later
// write then has a later ctime. A bundle that has not settled is keyed
// by the hash of its content, as all bundles were before, and read on
// every call until it settles. The trade-off: the first call after a
// bundle settles is a miss (one more CreateSession), and a file system
// whose clock runs more than bundleSettle behind this machine's (a
// network file system's server) could let a rewrite within its tick go
// unnoticed until the credentials expire, and an NFS client's attribute
// cache (up to a minute by default) can hide another machine's change
// for that long; the bundle is then still one the user wrote, only not
// the newest.
func (id fileIdentity) trust(path string) string {
	b := make([]byte, 0, 64+len(path))
	b = append(b, path...)
	b = append(b, 0)
	for _, v := range []uint64{id.dev, id.ino, uint64(id.size), uint64(id.mtime.UnixNano()), uint64(id.ctime.UnixNano())} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	sum := sha256.Sum256(b)
	return "ca-bundle-file " + hex.EncodeToString(sum[:])
}

// bundleSettle is how long ago a CA bundle must have last changed for
// its identity to stand for its content (see fileIdentity.trust): more
// than the coarsest file system clock tick (FAT's 2 seconds).
const bundleSettle = 5 * time.Second

// settled reports whether the file last changed more than bundleSettle
// before now (a change time after now is not settled, nor is none: a
// file system that reports no change times cannot be known by them).
func (id fileIdentity) settled(now time.Time) bool {
	return id.ctime.Unix() > 0 && id.ctime.Before(now.Add(-bundleSettle))
}

// readBundle reads the CA bundle at path for a miss and returns the
// cache key's trust for what it read: the file's identity, as a hit
// checks it, when the open file's identity is the same before and after
// the read and it has settled; otherwise (it changed while it was read,
// or moments ago) the hash of the content read.
func readBundle(path string, now time.Time) (pem []byte, trust string, err error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer file.Close()
	before, err := file.Stat()
	if err != nil {
		return nil, "", err
	}
	if pem, err = io.ReadAll(file); err != nil {
		return nil, "", err
	}
	if testHookBundleRead != nil {
		testHookBundleRead()
	}
	after, err := file.Stat()
	if err != nil {
		return nil, "", err
	}
	id, ok1 := fileID(before)
	idAfter, ok2 := fileID(after)
	if ok1 && ok2 && before.Mode().IsRegular() && id == idAfter && id.settled(now) {
		return pem, id.trust(path), nil
	}
	return pem, bundleTrust(pem), nil
}

// testHookBundleRead, set by tests, runs between readBundle's read and
// its second stat.
var testHookBundleRead func()

// endpoint picks the endpoint: the request's, then
// AWS_ENDPOINT_URL_ROLESANYWHERE (unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
// is true, as in the SDKs), then the region's default; and checks it,
// naming where it came from when it is wrong. The global AWS_ENDPOINT_URL
// is deliberately not read: CI jobs set it for LocalStack and the like,
// and the signed request must not follow it there.
func (f *Fetcher) endpoint(given, region string) (string, error) {
	field, source, value := "endpoint", f.name("endpoint"), given
	if value == "" && !strings.EqualFold(f.getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		field, value = "AWS_ENDPOINT_URL_ROLESANYWHERE", f.getenv("AWS_ENDPOINT_URL_ROLESANYWHERE")
		source = field
	}
	if value == "" {
		return rolesanywhere.DefaultEndpoint(region), nil
	}
	u, err := rolesanywhere.ParseEndpoint(value)
	if err != nil {
		return "", f.fail(field, "%s: %w", source, err)
	}
	return u.String(), nil
}

// Result is what Fetch got.
type Result struct {
	Credentials rolesanywhere.Credentials
	// Cached is true when the credentials came from the cache;
	// AssumedRoleARN is only known when they did not.
	Cached         bool
	AssumedRoleARN string
}

// Fetch checks r, then returns cached credentials with more than 15
// minutes left, or calls CreateSession and caches its answer. The
// certificate file is read once, and the files' combination checked
// before the cache is consulted, so a request fails or succeeds the same
// way whatever the cache holds. The key file is hashed into the cache
// key, so credentials are reused only with the very key file they were
// fetched with: a key replaced by one that does not match the
// certificate is a miss, and the miss reports it. The key is loaded
// (and its password asked) only on a miss, before the cache lock is
// taken, so other processes never wait on someone typing; a wrong
// password with an unchanged key file is therefore noticed on the next
// miss. AWS_CA_BUNDLE's identity (path, device, inode, size, modification
// and change times) is in the cache key, and the file is read only on a
// miss (see fileIdentity.trust for why the identity is enough, and when
// its content is hashed instead).
func (f *Fetcher) Fetch(ctx context.Context, r Request) (*Result, error) {
	// Without the cache there is no hit to spare a read of AWS_CA_BUNDLE.
	p, err := f.check(r, r.NoCache || r.InsecureSkipVerify)
	if err != nil {
		return nil, err
	}
	logger := f.logger()
	logger.Debug("resolved the request", "region", p.Region, "endpoint", p.Endpoint)
	files := r.Files
	if files.CertificateData, err = identity.ReadFile(identity.RoleCertificate, files.Certificate); err != nil {
		return nil, err
	}
	if err := identity.Check(files); err != nil {
		return nil, err
	}
	cache, key, err := f.cache(r, p, files)
	if err != nil {
		return nil, err
	}
	if cache != nil {
		if creds, ok := cache.Get(key); ok {
			return &Result{Credentials: creds, Cached: true}, nil
		}
	}
	clk := clock.Or(f.Clock)
	id, err := identity.Load(files, r.Password, clk.Now())
	if err != nil {
		return nil, err
	}
	logger.Debug("loaded certificate", "subject", id.Certificate.Subject.String(), "serial", id.Certificate.SerialNumber.String(),
		"not_after", id.Certificate.NotAfter.UTC().Format(time.RFC3339), "intermediates", len(id.Intermediates))
	if p.rootsPath != "" {
		// A miss: now the bundle itself is needed. Should it have
		// changed since the hit check, the credentials are cached under
		// the bundle they are fetched with.
		if p.Transport.RootCAs, p.Trust, err = readBundle(p.rootsPath, clk.Now()); err != nil {
			return nil, f.fail("AWS_CA_BUNDLE", "AWS_CA_BUNDLE: %w", err)
		}
		key.Trust = p.Trust
	}
	client, err := rolesanywhere.New(rolesanywhere.Config{
		Endpoint:    p.Endpoint,
		Region:      p.Region,
		Signer:      &sigv4.X509Signer{Key: id.Key, Certificate: id.Certificate, Intermediates: id.Intermediates},
		Transport:   p.Transport,
		UserAgent:   f.UserAgent,
		Now:         clk.Now,
		Sleep:       func(ctx context.Context, d time.Duration) error { return clock.Sleep(ctx, clk, d) },
		Logger:      logger,
		MaxAttempts: r.MaxAttempts,
		Clients:     f.Clients,
	})
	if errors.Is(err, rolesanywhere.ErrNoCertificates) {
		return nil, f.fail("AWS_CA_BUNDLE", "AWS_CA_BUNDLE: %w", err)
	}
	if err != nil {
		return nil, err
	}
	res := &Result{}
	fetch := func(ctx context.Context) (rolesanywhere.Credentials, error) {
		s, err := client.CreateSession(ctx, p.Input)
		if err != nil {
			return rolesanywhere.Credentials{}, err
		}
		logger.Debug("CreateSession succeeded", "assumed_role", s.AssumedRoleARN, "expires", s.Credentials.Expiration.Format(time.RFC3339))
		res.AssumedRoleARN = s.AssumedRoleARN
		return s.Credentials, nil
	}
	if cache == nil {
		res.Credentials, err = fetch(ctx)
	} else {
		res.Credentials, res.Cached, err = cache.GetOrFetch(ctx, key, fetch)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// cache returns the credentials cache and this request's key in it, or a
// nil cache when it is off: by NoCache, or because InsecureSkipVerify
// credentials could come from an impostor and must never be reused.
func (f *Fetcher) cache(r Request, p *Plan, files identity.Files) (*credcache.Cache, credcache.Key, error) {
	logger := f.logger()
	if r.InsecureSkipVerify {
		logger.Warn("--no-verify-ssl: the endpoint's TLS certificate is not checked, so credentials could come from an impostor; they are not cached")
	}
	if r.NoCache || r.InsecureSkipVerify {
		return nil, credcache.Key{}, nil
	}
	dir := r.CacheDir
	if dir == "" {
		var err error
		if dir, err = credcache.DefaultDir(); err != nil {
			logger.Warn("not using the credentials cache", "reason", err.Error())
			return nil, credcache.Key{}, nil
		}
	}
	fingerprint, err := identity.Fingerprint(files.Certificate, files.CertificateData)
	if err != nil {
		return nil, credcache.Key{}, err
	}
	var keyHash string
	if files.PrivateKey != "" {
		// Read on every hit: a few hundred bytes, hashed, never parsed.
		data, err := identity.ReadFile(identity.RolePrivateKey, files.PrivateKey)
		if err != nil {
			return nil, credcache.Key{}, err
		}
		sum := sha256.Sum256(data)
		keyHash = hex.EncodeToString(sum[:])
	}
	certPath := files.Certificate
	if abs, err := filepath.Abs(certPath); err == nil {
		certPath = abs
	}
	key := credcache.Key{
		Certificate: fingerprint, TrustAnchorARN: r.TrustAnchorARN, ProfileARN: r.ProfileARN, RoleARN: r.RoleARN,
		DurationSeconds: r.DurationSeconds, RoleSessionName: r.SessionName, Region: p.Region, Endpoint: p.Endpoint,
		Trust: p.Trust, PrivateKey: keyHash, CertificatePath: certPath,
	}
	var now func() time.Time
	if f.Clock != nil {
		now = f.Clock.Now
	}
	return &credcache.Cache{Dir: dir, Logger: logger, Now: now}, key, nil
}
