package credcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/testkit"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func testKey() Key {
	return Key{
		Certificate:     "aa11",
		TrustAnchorARN:  "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta",
		ProfileARN:      "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p",
		RoleARN:         "arn:aws:iam::111122223333:role/r",
		DurationSeconds: 3600,
		Region:          "us-east-1",
		Endpoint:        "https://rolesanywhere.us-east-1.amazonaws.com",
		CertificatePath: "/etc/keyless/runner.crt",
	}
}

type fetcher struct {
	calls atomic.Int32
	life  time.Duration
	now   func() time.Time
	// hold, when set, keeps each fetch waiting until it is closed.
	hold chan struct{}
	err  error
}

func (f *fetcher) fetch(ctx context.Context) (sigv4.Credentials, error) {
	n := f.calls.Add(1)
	if f.hold != nil {
		<-f.hold
	}
	if f.err != nil {
		return sigv4.Credentials{}, f.err
	}
	return sigv4.Credentials{
		AccessKeyID:     fmt.Sprintf("ASIAFETCH%07d", n),
		SecretAccessKey: "secret",
		SessionToken:    "token",
		Expiration:      f.now().Add(f.life),
	}, nil
}

func newCache(t *testing.T) (*Cache, *testkit.Clock, *bytes.Buffer) {
	t.Helper()
	clk := testkit.NewClock(t0)
	var logs bytes.Buffer
	c := &Cache{
		Dir:    filepath.Join(t.TempDir(), "keyless"),
		Now:    clk.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return c, clk, &logs
}

func TestHitAndPermissions(t *testing.T) {
	c, clk, logs := newCache(t)
	f := &fetcher{life: time.Hour, now: clk.Now}
	first, hit, err := c.GetOrFetch(context.Background(), testKey(), f.fetch)
	if err != nil || hit {
		t.Fatalf("first call: hit=%v err=%v", hit, err)
	}
	for i := 0; i < 99; i++ {
		got, hit, err := c.GetOrFetch(context.Background(), testKey(), f.fetch)
		if err != nil || !hit || got != first {
			t.Fatalf("call %d: hit=%v err=%v", i+2, hit, err)
		}
	}
	if f.calls.Load() != 1 {
		t.Fatalf("100 calls fetched %d times, want 1", f.calls.Load())
	}
	dirInfo, err := os.Stat(c.Dir)
	if err != nil || dirInfo.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v", dirInfo.Mode().Perm(), err)
	}
	fileInfo, err := os.Stat(filepath.Join(c.Dir, testKey().filename()))
	if err != nil || fileInfo.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", fileInfo.Mode().Perm(), err)
	}
	if strings.Contains(logs.String(), "secret") || strings.Contains(logs.String(), "token\"") || strings.Contains(logs.String(), first.AccessKeyID) {
		t.Fatalf("credentials in the log:\n%s", logs)
	}
}

func TestExpiryMargin(t *testing.T) {
	c, clk, _ := newCache(t)
	f := &fetcher{life: time.Hour, now: clk.Now}
	ctx := context.Background()
	if _, _, err := c.GetOrFetch(ctx, testKey(), f.fetch); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(44*time.Minute + 59*time.Second)) // 15m01s left: reused
	if _, hit, _ := c.GetOrFetch(ctx, testKey(), f.fetch); !hit {
		t.Fatal("credentials with 15m01s left were not reused")
	}
	clk.Set(t0.Add(45 * time.Minute)) // exactly 15m left: refreshed
	if _, hit, _ := c.GetOrFetch(ctx, testKey(), f.fetch); hit {
		t.Fatal("credentials with 15m left were reused")
	}
	if f.calls.Load() != 2 {
		t.Fatalf("fetched %d times, want 2", f.calls.Load())
	}
	// 15-minute sessions can never be reused: they start at the margin.
	f.life = 15 * time.Minute
	k := testKey()
	k.DurationSeconds = 900
	c.GetOrFetch(ctx, k, f.fetch)
	if _, hit, _ := c.GetOrFetch(ctx, k, f.fetch); hit {
		t.Fatal("a 15-minute session was reused")
	}
}

func TestKeysAreSeparate(t *testing.T) {
	c, clk, _ := newCache(t)
	f := &fetcher{life: time.Hour, now: clk.Now}
	ctx := context.Background()
	variants := []func(*Key){
		func(k *Key) {},
		func(k *Key) { k.RoleARN += "2" },
		func(k *Key) { k.ProfileARN += "2" },
		func(k *Key) { k.TrustAnchorARN += "2" },
		func(k *Key) { k.DurationSeconds = 7200 },
		func(k *Key) { k.RoleSessionName = "job-1" },
		func(k *Key) { k.Endpoint = "http://127.0.0.1:8443" },
		func(k *Key) { k.Region = "eu-west-1" },
		func(k *Key) { k.Trust = "ca-bundle:1234" },
	}
	for _, v := range variants {
		k := testKey()
		v(&k)
		c.GetOrFetch(ctx, k, f.fetch)
	}
	if f.calls.Load() != int32(len(variants)) {
		t.Fatalf("%d fetches for %d distinct keys", f.calls.Load(), len(variants))
	}
	// The same certificate at another path shares the entry.
	k := testKey()
	k.CertificatePath = "/elsewhere/same.crt"
	if _, hit, _ := c.GetOrFetch(ctx, k, f.fetch); !hit {
		t.Fatal("same certificate at another path missed")
	}
}

func TestCertificateChangeDiscardsOldEntry(t *testing.T) {
	c, clk, _ := newCache(t)
	f := &fetcher{life: time.Hour, now: clk.Now}
	ctx := context.Background()
	old := testKey()
	c.GetOrFetch(ctx, old, f.fetch)
	oldLonger := testKey()
	oldLonger.DurationSeconds = 7200
	c.GetOrFetch(ctx, oldLonger, f.fetch)
	other := testKey()
	other.CertificatePath = "/other/path.crt"
	other.Certificate = "cc33"
	c.GetOrFetch(ctx, other, f.fetch)

	renewed := testKey()
	renewed.Certificate = "bb22"
	if _, hit, _ := c.GetOrFetch(ctx, renewed, f.fetch); hit {
		t.Fatal("a new certificate reused the old one's credentials")
	}
	for _, k := range []Key{old, oldLonger} {
		if _, err := os.Stat(filepath.Join(c.Dir, k.filename())); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("old certificate's entry still on disk: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Dir, other.filename())); err != nil {
		t.Fatalf("another path's entry was removed: %v", err)
	}
}

func TestExpiredEntriesArePruned(t *testing.T) {
	c, clk, _ := newCache(t)
	f := &fetcher{life: time.Hour, now: clk.Now}
	ctx := context.Background()
	a := testKey()
	a.RoleARN += "-a"
	c.GetOrFetch(ctx, a, f.fetch)
	clk.Advance(2 * time.Hour)
	c.GetOrFetch(ctx, testKey(), f.fetch)
	if _, err := os.Stat(filepath.Join(c.Dir, a.filename())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired entry kept: %v", err)
	}
}

func TestConcurrentCallersFetchOnce(t *testing.T) {
	c, clk, _ := newCache(t)
	// The first caller's fetch is held until every other caller waits on
	// the lock it holds; then they must all read what it fetched.
	f := &fetcher{life: time.Hour, now: clk.Now, hold: make(chan struct{})}
	var wg sync.WaitGroup
	results := make([]sigv4.Credentials, 16)
	errs := make([]error, len(results))
	var waiting atomic.Int32
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate Cache values, as separate processes would have.
			cc := *c
			cc.waiting = func() {
				if waiting.Add(1) == int32(len(results)-1) {
					close(f.hold)
				}
			}
			results[i], _, errs[i] = cc.GetOrFetch(context.Background(), testKey(), f.fetch)
		}()
	}
	wg.Wait()
	if f.calls.Load() != 1 {
		t.Fatalf("%d concurrent callers fetched %d times, want 1", len(results), f.calls.Load())
	}
	for i := range results {
		if errs[i] != nil || results[i] != results[0] {
			t.Fatalf("caller %d got %v / %v", i, results[i].AccessKeyID, errs[i])
		}
	}
}

func TestCorruptOrUnsafeEntriesAreReplaced(t *testing.T) {
	for name, prepare := range map[string]func(path string) error{
		"garbage":   func(p string) error { return os.WriteFile(p, []byte("{not json"), 0o600) },
		"truncated": func(p string) error { return os.WriteFile(p, []byte(`{"version":1,"key":`), 0o600) },
		"empty":     func(p string) error { return os.WriteFile(p, nil, 0o600) },
		"no-token": func(p string) error {
			return os.WriteFile(p, []byte(`{"version":1,"accessKeyId":"A","secretAccessKey":"s","expiration":"2099-01-01T00:00:00Z"}`), 0o600)
		},
		"world-read": func(p string) error { return os.WriteFile(p, []byte(validEntry()), 0o644) },
		"symlink":    func(p string) error { return os.Symlink("/etc/hostname", p) },
		"other-key": func(p string) error {
			return os.WriteFile(p, []byte(strings.Replace(validEntry(), "aa11", "ff99", 1)), 0o600)
		},
		"future-ver": func(p string) error {
			return os.WriteFile(p, []byte(strings.Replace(validEntry(), `"version":1`, `"version":2`, 1)), 0o600)
		},
		"is-directory": func(p string) error { return os.Mkdir(p, 0o700) },
	} {
		t.Run(name, func(t *testing.T) {
			c, clk, _ := newCache(t)
			if err := os.MkdirAll(c.Dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(c.Dir, testKey().filename())
			if err := prepare(path); err != nil {
				t.Fatal(err)
			}
			if _, ok := c.Get(testKey()); ok {
				t.Fatal("bad entry was used")
			}
			f := &fetcher{life: time.Hour, now: clk.Now}
			creds, hit, err := c.GetOrFetch(context.Background(), testKey(), f.fetch)
			if err != nil || hit || creds.AccessKeyID == "" {
				t.Fatalf("hit=%v err=%v", hit, err)
			}
			if name == "is-directory" {
				return // cannot be replaced by rename; the fetch still worked
			}
			if got, ok := c.Get(testKey()); !ok || got != creds {
				t.Fatal("bad entry was not replaced by the fresh credentials")
			}
		})
	}
}

func validEntry() string {
	return `{"version":1,"key":{"certificate":"aa11","trustAnchorArn":"arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta","profileArn":"arn:aws:rolesanywhere:us-east-1:111122223333:profile/p","roleArn":"arn:aws:iam::111122223333:role/r","durationSeconds":3600,"roleSessionName":"","region":"us-east-1","endpoint":"https://rolesanywhere.us-east-1.amazonaws.com","certificatePath":"/etc/keyless/runner.crt"},"accessKeyId":"ASIAPLANTED","secretAccessKey":"s","sessionToken":"t","expiration":"2099-01-01T00:00:00Z"}`
}

func TestValidEntryFixtureIsReadable(t *testing.T) {
	// Guards the fixture above: without this, the "world-read" and
	// "other-key" cases could pass because the fixture itself is broken.
	c, _, _ := newCache(t)
	os.MkdirAll(c.Dir, 0o700)
	os.WriteFile(filepath.Join(c.Dir, testKey().filename()), []byte(validEntry()), 0o600)
	if got, ok := c.Get(testKey()); !ok || got.AccessKeyID != "ASIAPLANTED" {
		t.Fatal("valid fixture entry not read")
	}
}

func TestUnsafeDirectory(t *testing.T) {
	t.Run("loose-mode-is-refused-not-changed", func(t *testing.T) {
		c, clk, logs := newCache(t)
		os.MkdirAll(c.Dir, 0o777)
		os.Chmod(c.Dir, 0o777)
		f := &fetcher{life: time.Hour, now: clk.Now}
		_, hit, err := c.GetOrFetch(context.Background(), testKey(), f.fetch)
		info, _ := os.Stat(c.Dir)
		if err != nil || hit || info.Mode().Perm() != 0o777 || !strings.Contains(logs.String(), "not using the credentials cache") {
			t.Fatalf("err %v, mode %04o, logs %s", err, info.Mode().Perm(), logs)
		}
		if entries, _ := os.ReadDir(c.Dir); len(entries) != 0 {
			t.Fatalf("wrote into a directory others can use: %v", entries)
		}
	})
	t.Run("symlinked-dir-is-refused", func(t *testing.T) {
		c, clk, logs := newCache(t)
		real := filepath.Join(t.TempDir(), "real")
		os.MkdirAll(real, 0o700)
		if err := os.Symlink(real, c.Dir); err != nil {
			t.Fatal(err)
		}
		f := &fetcher{life: time.Hour, now: clk.Now}
		_, hit, err := c.GetOrFetch(context.Background(), testKey(), f.fetch)
		if err != nil || hit || !strings.Contains(logs.String(), "not using the credentials cache") {
			t.Fatalf("err=%v hit=%v logs=%s", err, hit, logs)
		}
		if entries, _ := os.ReadDir(real); len(entries) != 0 {
			t.Fatal("wrote through a symlinked cache directory")
		}
	})
	t.Run("foreign-owner-is-refused", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give the directory to another user")
		}
		c, clk, logs := newCache(t)
		os.MkdirAll(c.Dir, 0o700)
		if err := os.Chown(c.Dir, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		f := &fetcher{life: time.Hour, now: clk.Now}
		c.GetOrFetch(context.Background(), testKey(), f.fetch)
		c.GetOrFetch(context.Background(), testKey(), f.fetch)
		if f.calls.Load() != 2 || !strings.Contains(logs.String(), "uid 4242") {
			t.Fatalf("%d fetches, logs %s", f.calls.Load(), logs)
		}
	})
	t.Run("unwritable-location-still-fetches", func(t *testing.T) {
		c, clk, logs := newCache(t)
		c.Dir = "/dev/null/keyless"
		f := &fetcher{life: time.Hour, now: clk.Now}
		creds, _, err := c.GetOrFetch(context.Background(), testKey(), f.fetch)
		if err != nil || creds.AccessKeyID == "" || !strings.Contains(logs.String(), "not using") {
			t.Fatalf("err=%v logs=%s", err, logs)
		}
	})
}

func TestShortLivedCredentialsWarn(t *testing.T) {
	c, clk, logs := newCache(t)
	f := &fetcher{life: 15 * time.Minute, now: clk.Now}
	c.GetOrFetch(context.Background(), testKey(), f.fetch)
	if !strings.Contains(logs.String(), "last too little to be reused") {
		t.Fatalf("no warning for 15-minute credentials:\n%s", logs)
	}
	c2, clk2, logs2 := newCache(t)
	f2 := &fetcher{life: time.Hour, now: clk2.Now}
	c2.GetOrFetch(context.Background(), testKey(), f2.fetch)
	if strings.Contains(logs2.String(), "too little") {
		t.Fatal("warned for 1-hour credentials")
	}
}

func TestFetchErrorIsReturnedAndNotCached(t *testing.T) {
	c, clk, _ := newCache(t)
	boom := errors.New("CreateSession refused")
	f := &fetcher{life: time.Hour, now: clk.Now, err: boom}
	if _, _, err := c.GetOrFetch(context.Background(), testKey(), f.fetch); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, ok := c.Get(testKey()); ok {
		t.Fatal("a failure left an entry")
	}
}

func TestLockTimeoutFallsBackToFetching(t *testing.T) {
	c, clk, logs := newCache(t)
	c.LockTimeout = 50 * time.Millisecond
	if err := c.checkDir(true); err != nil {
		t.Fatal(err)
	}
	unlock, err := c.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	f := &fetcher{life: time.Hour, now: clk.Now}
	creds, _, err := c.GetOrFetch(context.Background(), testKey(), f.fetch)
	if err != nil || creds.AccessKeyID == "" || !strings.Contains(logs.String(), "without the cache lock") {
		t.Fatalf("err=%v logs=%s", err, logs)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, _ := DefaultDir(); d != "/xdg/keyless" {
		t.Errorf("got %s", d)
	}
	t.Setenv("XDG_CACHE_HOME", "relative") // ignored, as the XDG spec says
	t.Setenv("HOME", "/home/runner")
	if d, _ := DefaultDir(); d != "/home/runner/.cache/keyless" {
		t.Errorf("got %s", d)
	}
}

// TestOnlyTheCachesFilesAreRemoved: --cache-dir may name a directory that
// holds other files (the attack review pointed it at a project and lost
// package.json); pruning removes only entries and temporary entries the
// cache itself names.
func TestOnlyTheCachesFilesAreRemoved(t *testing.T) {
	c, clk, _ := newCache(t)
	os.MkdirAll(c.Dir, 0o700)
	others := []string{"package.json", "tsconfig.json", ".tmp-notes-1", "0123456789abcdef0123456789abcdef.json.bak", "README"}
	for _, n := range others {
		if err := os.WriteFile(filepath.Join(c.Dir, n), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stale := Key{Certificate: "old", CertificatePath: "/x"}
	if err := os.WriteFile(filepath.Join(c.Dir, stale.filename()), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fetcher{life: time.Hour, now: clk.Now}
	if _, _, err := c.GetOrFetch(context.Background(), testKey(), f.fetch); err != nil {
		t.Fatal(err)
	}
	for _, n := range others {
		if _, err := os.Stat(filepath.Join(c.Dir, n)); err != nil {
			t.Errorf("%s, not the cache's, was removed: %v", n, err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Dir, stale.filename())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a corrupt cache entry was kept: %v", err)
	}
}
