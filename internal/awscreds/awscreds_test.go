package awscreds_test

import (
	"context"
	"crypto"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere/rolesanywheretest"
	"github.com/keyless-dev/keyless/internal/testkit"
)

func flagName(f string) string {
	if strings.ToUpper(f) == f {
		return f
	}
	return "--" + f
}

func request() awscreds.Request {
	return awscreds.Request{Files: identity.Files{Certificate: "runner.crt"}, TrustAnchorARN: rolesanywheretest.TrustAnchorARN,
		ProfileARN: rolesanywheretest.ProfileARN, RoleARN: rolesanywheretest.RoleARN, DurationSeconds: 3600}
}

// TestCheckRefusesBeforeReadingAnything: each rule Check applies, broken
// once, names its field.
func TestCheckRefusesBeforeReadingAnything(t *testing.T) {
	env := map[string]string{}
	f := &awscreds.Fetcher{Name: flagName, Getenv: func(k string) string { return env[k] }}
	for _, tc := range []struct {
		name, field, msg string
		change           func(r *awscreds.Request)
	}{
		{"missing", "missing", "missing --certificate, --role-arn", func(r *awscreds.Request) { r.Files.Certificate, r.RoleARN = "", "" }},
		{"bad arn", "role-arn", `--role-arn: invalid ARN "ci"`, func(r *awscreds.Request) { r.RoleARN = "ci" }},
		{"regions", "profile-arn", "--trust-anchor-arn is in us-east-1 but --profile-arn is in eu-west-1; both must be in the same region",
			func(r *awscreds.Request) { r.ProfileARN = "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/p" }},
		{"accounts", "profile-arn", "both must be in the same account",
			func(r *awscreds.Request) { r.ProfileARN = "arn:aws:rolesanywhere:us-east-1:444455556666:profile/p" }},
		{"region flag", "region", "--region eu-west-1 contradicts the trust anchor's region us-east-1; drop --region", func(r *awscreds.Request) { r.Region = "eu-west-1" }},
		{"duration", "session-duration", "--session-duration 899: must be 900 to 43200", func(r *awscreds.Request) { r.DurationSeconds = 899 }},
		{"session name", "role-session-name", `--role-session-name "job 42"`, func(r *awscreds.Request) { r.SessionName = "job 42" }},
		{"endpoint", "endpoint", "--endpoint: endpoint \"http://192.0.2.10:8443\": plain HTTP", func(r *awscreds.Request) { r.Endpoint = "http://192.0.2.10:8443" }},
		{"endpoint env", "AWS_ENDPOINT_URL_ROLESANYWHERE", "AWS_ENDPOINT_URL_ROLESANYWHERE: endpoint \"ftp://x\"", func(*awscreds.Request) { env["AWS_ENDPOINT_URL_ROLESANYWHERE"] = "ftp://x" }},
		{"ca bundle", "AWS_CA_BUNDLE", "AWS_CA_BUNDLE: open", func(*awscreds.Request) { env["AWS_CA_BUNDLE"] = "/nonexistent/ca.pem" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(env)
			r := request()
			tc.change(&r)
			_, err := f.Check(r)
			var ie *awscreds.InputError
			if !errors.As(err, &ie) || ie.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v (field %v), want field %s with %q", err, ie, tc.field, tc.msg)
			}
		})
	}
	clear(env)
	env["AWS_ENDPOINT_URL_ROLESANYWHERE"] = "https://ra.example"
	if p, err := f.Check(request()); err != nil || p.Endpoint != "https://ra.example" || p.Trust != "system roots" {
		t.Fatalf("endpoint from the environment: %+v %v", p, err)
	}
	env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "TRUE"
	if p, err := f.Check(request()); err != nil || p.Endpoint != "https://rolesanywhere.us-east-1.amazonaws.com" {
		t.Fatalf("ignored configured endpoints: %+v %v", p, err)
	}
}

// TestFetchThroughTheCache: the first Fetch calls CreateSession, the next
// reads the cache until the credentials have 15 minutes left; NoCache and
// a wrong key bypass the cache or fail before CreateSession.
func TestFetchThroughTheCache(t *testing.T) {
	root := pkitest.NewRoot(t, "awscreds-root")
	inter := root.Intermediate(t, "awscreds-int")
	clock := testkit.NewClock(time.Now())
	emu := emulatortest.NewAt(t, clock.Now, nil, root.Cert)
	dir := t.TempDir()
	crt, keyFile := inter.WriteIdentity(t, dir)
	f := &awscreds.Fetcher{Clock: clock, Getenv: func(string) string { return "" }}
	r := awscreds.Request{Files: identity.Files{Certificate: crt, PrivateKey: keyFile}, TrustAnchorARN: emu.TrustAnchorARN,
		ProfileARN: emu.ProfileARN, RoleARN: emu.RoleARN, DurationSeconds: 3600, Endpoint: emu.URL, CacheDir: filepath.Join(dir, "cache")}
	ctx := context.Background()

	first, err := f.Fetch(ctx, r)
	if err != nil || first.Cached || !strings.HasPrefix(first.AssumedRoleARN, "arn:aws:sts::111122223333:assumed-role/ci-deployer/") {
		t.Fatalf("first fetch: %+v %v", first, err)
	}
	again, err := f.Fetch(ctx, r)
	if err != nil || !again.Cached || again.Credentials != first.Credentials {
		t.Fatalf("second fetch: %+v %v", again, err)
	}
	clock.Set(first.Credentials.Expiration.Add(-15 * time.Minute))
	later, err := f.Fetch(ctx, r)
	if err != nil || later.Cached || later.Credentials.AccessKeyID == first.Credentials.AccessKeyID {
		t.Fatalf("with 15 minutes left: %+v %v", later, err)
	}
	r.NoCache = true
	if res, err := f.Fetch(ctx, r); err != nil || res.Cached {
		t.Fatalf("NoCache: %+v %v", res, err)
	}
	r.Files.PrivateKey = pkitest.WriteFile(t, dir, "other.key", mustPEM(t))
	if _, err := f.Fetch(ctx, r); !errors.Is(err, identity.ErrKeyMismatch) {
		t.Fatalf("another key: got %v, want a key mismatch", err)
	}
}

func mustPEM(t *testing.T) []byte {
	t.Helper()
	b, err := pki.EncodePrivateKey(pkitest.Key(t, pkitest.P384))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCacheHitChecksTheKey: a cached entry is reused only with the key
// file it was fetched with. A key replaced in place by one that does not
// match the certificate fails at once, not when the cached credentials
// run out; so does a missing key file. An encrypted key is not decrypted
// on a hit: its file's hash decides.
func TestCacheHitChecksTheKey(t *testing.T) {
	root := pkitest.NewRoot(t, "awscreds-root")
	inter := root.Intermediate(t, "awscreds-int")
	clock := testkit.NewClock(time.Now())
	emu := emulatortest.NewAt(t, clock.Now, nil, root.Cert)
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			dir := t.TempDir()
			key := pkitest.Key(t, pkitest.P256)
			encode := func(k crypto.Signer) []byte {
				t.Helper()
				var b []byte
				var err error
				if encrypted {
					b, err = pki.EncryptPrivateKey(k, []byte("correct horse battery staple"))
				} else {
					b, err = pki.EncodePrivateKey(k)
				}
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			crt := pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(inter.Leaf(t, pkitest.LeafOptions{Key: key}), inter.Cert))
			keyFile := pkitest.WriteFile(t, dir, "runner.key", encode(key))
			asked := 0
			r := awscreds.Request{Files: identity.Files{Certificate: crt, PrivateKey: keyFile}, TrustAnchorARN: emu.TrustAnchorARN,
				ProfileARN: emu.ProfileARN, RoleARN: emu.RoleARN, DurationSeconds: 3600, Endpoint: emu.URL, CacheDir: filepath.Join(dir, "cache"),
				Password: func(string) ([]byte, error) { asked++; return []byte("correct horse battery staple"), nil }}
			f := &awscreds.Fetcher{Clock: clock, Getenv: func(string) string { return "" }}
			ctx := context.Background()
			if _, err := f.Fetch(ctx, r); err != nil {
				t.Fatal(err)
			}
			asked = 0
			if res, err := f.Fetch(ctx, r); err != nil || !res.Cached || asked != 0 {
				t.Fatalf("a hit: %+v %v, password asked %d times", res, err, asked)
			}
			pkitest.WriteFile(t, dir, "runner.key", encode(pkitest.Key(t, pkitest.P384))) // (pkitest hands out one key per type)
			if _, err := f.Fetch(ctx, r); !errors.Is(err, identity.ErrKeyMismatch) {
				t.Fatalf("a key replaced by one that does not match: got %v, want a key mismatch", err)
			}
			if err := os.Remove(keyFile); err != nil {
				t.Fatal(err)
			}
			var fe *identity.FileError
			if _, err := f.Fetch(ctx, r); !errors.As(err, &fe) || fe.Role != identity.RolePrivateKey {
				t.Fatalf("no key file: got %v", err)
			}
		})
	}
}

// TestCABundleIsPartOfTheCacheKey: credentials fetched trusting one
// AWS_CA_BUNDLE are reused only while the bundle file is the same. A hit
// knows a settled bundle (unchanged for BundleSettle) by one stat, its
// identity, so each way of changing the file is a miss: new content of
// another size, new content of the same size with the modification time
// put back (the change time differs), another file renamed over it. A
// bundle changed moments ago, or while a miss read it, is keyed by the
// hash of the content read instead. A bundle that changes between the
// hit check and the miss's read is cached under the bundle the miss
// read.
func TestCABundleIsPartOfTheCacheKey(t *testing.T) {
	root := pkitest.NewRoot(t, "awscreds-root")
	inter := root.Intermediate(t, "awscreds-int")
	clock := testkit.NewClock(time.Now())
	seed, err := emulator.ParseSeed([]byte(emulatortest.Seed(pki.EncodeCertificates(root.Cert))), emulator.SeedSource{Name: "seed.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New(emulator.Config{Seed: seed, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(emu)
	t.Cleanup(srv.Close)
	out := seed.Outputs(srv.URL)

	dir := t.TempDir()
	key := pkitest.Key(t, pkitest.P256)
	const password = "correct horse battery staple"
	encrypted, err := pki.EncryptPrivateKey(key, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	crt := pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(inter.Leaf(t, pkitest.LeafOptions{Key: key}), inter.Cert))
	keyFile := pkitest.WriteFile(t, dir, "runner.key", encrypted)
	serverCA := pki.EncodeCertificates(srv.Certificate())
	// Bundles of one size that all trust the server: text outside PEM
	// blocks is allowed.
	bundleOf := func(c byte) []byte { return append([]byte{'#', c, '\n'}, serverCA...) }
	bundleB := append(bundleOf('b'), pki.EncodeCertificates(root.Cert)...) // another size
	bundle := pkitest.WriteFile(t, dir, "bundle.pem", bundleOf('a'))
	var onPassword func()
	asked := 0
	r := awscreds.Request{Files: identity.Files{Certificate: crt, PrivateKey: keyFile}, TrustAnchorARN: out.TrustAnchors[emulatortest.TrustAnchor],
		ProfileARN: out.Profiles[emulatortest.Profile], RoleARN: out.Roles[emulatortest.Role], DurationSeconds: 3600, Endpoint: srv.URL,
		CacheDir: filepath.Join(dir, "cache"),
		Password: func(string) ([]byte, error) {
			asked++
			if onPassword != nil {
				onPassword()
			}
			return []byte(password), nil
		}}
	f := &awscreds.Fetcher{Clock: clock, Getenv: func(k string) string {
		if k == "AWS_CA_BUNDLE" {
			return bundle
		}
		return ""
	}}
	ctx := context.Background()
	fetch := func(what string, wantCached bool) {
		t.Helper()
		asked = 0
		res, err := f.Fetch(ctx, r)
		if err != nil || res.Cached != wantCached {
			t.Fatalf("%s: %+v %v, want cached %v", what, res, err, wantCached)
		}
		if wantCached && asked != 0 {
			t.Fatalf("%s: a hit asked for the key's password (the bundle's cache key was not found before the miss)", what)
		}
	}
	// settle moves the clock past the bundle's last change by more
	// than BundleSettle (the files' times are the real clock's).
	settle := func() {
		t.Helper()
		info, err := os.Stat(bundle)
		if err != nil {
			t.Fatal(err)
		}
		ctime, ok := awscreds.ChangeTime(info)
		if !ok {
			t.Skip("no change times on this system: the bundle's content is hashed instead")
		}
		clock.Set(ctime.Add(awscreds.BundleSettle + time.Second))
	}
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(bundle, mtime, mtime); err != nil {
		t.Fatal(err)
	}

	fetch("just written", false)
	fetch("just written, keyed by its content", true)
	settle()
	fetch("settled, keyed by its identity", false)
	fetch("settled, again", true)

	pkitest.WriteFile(t, dir, "bundle.pem", bundleB)
	settle()
	fetch("changed bundle", false)
	fetch("changed bundle again", true)

	rewriteKeepingTimes(t, bundle, bundleOf('a'), mtime)
	settle()
	fetch("back to the first bundle", false) // (a new change time, though the content is the first's)
	fetch("back to the first bundle again", true)
	rewriteKeepingTimes(t, bundle, bundleOf('c'), mtime)
	settle()
	fetch("rewritten in place, same size and modification time", false)
	fetch("rewritten in place, again", true)

	renamed := pkitest.WriteFile(t, dir, "bundle.new", bundleOf('d'))
	if err := os.Chtimes(renamed, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(renamed, bundle); err != nil {
		t.Fatal(err)
	}
	settle()
	fetch("another file renamed over it, same size and modification time", false)
	fetch("renamed, again", true)

	// Rewritten (with the same content) while the miss reads it, and
	// not settled after: the miss keys what it read by its content, so
	// the next call, which hashes the unsettled file, finds it.
	pkitest.WriteFile(t, dir, "bundle.pem", bundleB)
	settle()
	awscreds.SetBundleReadHook(t.Cleanup, func() {
		rewriteKeepingTimes(t, bundle, bundleB, mtime)
		settle()
		clock.Set(clock.Now().Add(-awscreds.BundleSettle - time.Second)) // the file's change time
	})
	fetch("changed while the miss read it", false)
	awscreds.SetBundleReadHook(t.Cleanup, nil)
	fetch("the content the miss read", true)

	// The bundle changes after the hit check stat'ed it and before the
	// miss reads it: a new key file forces the miss, and its password
	// prompt sits between the two. The miss keys what it read: by its
	// content while it has not settled, by its identity after.
	key2 := pkitest.Key(t, pkitest.P384)
	encrypted2, err := pki.EncryptPrivateKey(key2, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	pkitest.WriteFile(t, dir, "runner.crt", pki.EncodeCertificates(inter.Leaf(t, pkitest.LeafOptions{Key: key2}), inter.Cert))
	pkitest.WriteFile(t, dir, "runner.key", encrypted2)
	settle()
	onPassword = func() {
		pkitest.WriteFile(t, dir, "bundle.pem", bundleOf('f'))
		settle()
		clock.Set(clock.Now().Add(-awscreds.BundleSettle - time.Second)) // the file's change time
	}
	fetch("bundle changed during the miss", false)
	onPassword = nil
	fetch("the bundle the miss used, not settled", true)
	settle()
	fetch("the bundle the miss used, settled", false)
	fetch("the bundle the miss used, settled, again", true)
	pkitest.WriteFile(t, dir, "bundle.pem", bundleOf('g'))
	settle()
	onPassword = func() { rewriteKeepingTimes(t, bundle, bundleOf('h'), mtime); settle() }
	fetch("bundle changed during the miss, and settled", false)
	onPassword = nil
	fetch("the bundle the miss used, by identity", true)
}

// rewriteKeepingTimes writes data over path in place and puts its
// modification time back to mtime, until its change time differs from
// the one before (on a file system whose clock ticks coarsely, writes in
// one tick keep the change time: the settle rule is for them).
func rewriteKeepingTimes(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	ctime := func() time.Time {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := awscreds.ChangeTime(info)
		return c
	}
	before := ctime()
	for i := 0; ; i++ {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if !ctime().Equal(before) {
			return
		}
		if i == 1e6 {
			t.Fatalf("the change time of %s did not change in %d writes", path, i)
		}
	}
}
