package credcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/sigv4"
)

// fuzzOtherFile is the name of a second entry, another key's, that
// prune judges.
const fuzzOtherFile = "00000000000000000000000000000000.json"

// FuzzEntry writes arbitrary bytes as the cache entry of a key, and as the
// entry of another key, and uses the cache. Whatever the files hold:
//   - Get hands out credentials exactly when an independent reading of
//     the entry format finds a complete entry of this key with more than
//     MinRemaining left, and then exactly those;
//   - GetOrFetch never fails because of the cache: it returns the cached
//     credentials without fetching, or fetches once, and what it fetched is
//     what Get returns next (the damaged entry is replaced);
//   - after writing, prune has removed the other entry exactly when it
//     can never be used again (unreadable, expired, or of another
//     certificate at the same path), and no temporary file is left;
//   - no credential reaches the log.
func FuzzEntry(f *testing.F) {
	key := testKey()
	valid := func(k Key, exp time.Time) []byte {
		b, _ := json.Marshal(entry{Version: entryVersion, Key: k, AccessKeyID: "ASIACACHED0000000001", SecretAccessKey: "cached-secret-0123456789",
			SessionToken: "cached-session-token-0123456789", Expiration: exp})
		return b
	}
	other := key
	other.Certificate = "bb22"
	f.Add(valid(key, t0.Add(time.Hour)), valid(other, t0.Add(time.Hour)))
	f.Add(valid(key, t0.Add(DefaultMinRemaining)), valid(other, t0))
	f.Add([]byte(`{"version":1}`), []byte(`not json`))

	dir := filepath.Join(f.TempDir(), "keyless")
	now := func() time.Time { return t0 }
	fetched := sigv4.Credentials{AccessKeyID: "ASIAFETCHED000000001", SecretAccessKey: "fetched-secret-0123456789",
		SessionToken: "fetched-session-token-0123456789", Expiration: t0.Add(time.Hour)}
	f.Fuzz(func(t *testing.T, data, otherData []byte) {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, key.filename())
		otherPath := filepath.Join(dir, fuzzOtherFile)
		for p, d := range map[string][]byte{path: data, otherPath: otherData} {
			if err := os.WriteFile(p, d, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var logs bytes.Buffer
		c := &Cache{Dir: dir, Now: now, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

		want, wantOK := readFuzzEntry(data)
		wantHit := wantOK && want.Key.withoutPath() == key.withoutPath() && want.Expiration.Sub(t0) > DefaultMinRemaining
		got, ok := c.Get(key)
		if ok != wantHit {
			t.Fatalf("Get: hit %v, want %v", ok, wantHit)
		}
		if ok && got != want.credentials() {
			t.Fatalf("Get returned %+v, the entry holds %+v", got, want.credentials())
		}

		calls := 0
		creds, hit, err := c.GetOrFetch(context.Background(), key, func(context.Context) (sigv4.Credentials, error) {
			calls++
			return fetched, nil
		})
		switch {
		case err != nil:
			t.Fatalf("GetOrFetch failed because of the cache: %v", err)
		case hit != wantHit || (hit && (calls != 0 || creds != got)) || (!hit && (calls != 1 || creds != fetched)):
			t.Fatalf("GetOrFetch: hit %v after %d fetches, want hit %v", hit, calls, wantHit)
		}
		if !hit {
			if again, ok := c.Get(key); !ok || again != fetched {
				t.Fatalf("after a fetch, Get returns %+v, %v", again, ok)
			}
			o, readable := readFuzzEntry(otherData)
			keep := readable && o.Expiration.After(t0) &&
				(o.Key.CertificatePath != key.CertificatePath || o.Key.Certificate == key.Certificate)
			if _, err := os.Lstat(otherPath); keep != (err == nil) || (!keep && !errors.Is(err, fs.ErrNotExist)) {
				t.Fatalf("prune: other entry there: %v (%v), want %v", err == nil, err, keep)
			}
		}
		names, _ := os.ReadDir(dir)
		for _, n := range names {
			if strings.HasPrefix(n.Name(), ".tmp-") {
				t.Fatalf("temporary file %s left", n.Name())
			}
		}

		// Credentials never reach the log. (When the entry is not valid
		// JSON of the format, a parse error may quote the bytes it
		// stumbled on; then there are no credentials to speak of.)
		secrets := []string{fetched.SecretAccessKey, fetched.SessionToken}
		for _, e := range []*entry{want} {
			if e != nil {
				secrets = append(secrets, e.SecretAccessKey, e.SessionToken)
			}
		}
		for _, s := range secrets {
			if len(s) >= 8 && strings.Contains(logs.String(), s) {
				t.Fatalf("a credential reached the log:\n%s", logs.String())
			}
		}
	})
}

// readFuzzEntry reads an entry by the file format, written out again here
// so that a change to it shows: a JSON object with version 1, the key,
// and the three credential strings and expiration, all set. It returns
// ok false for a file the cache must treat as missing.
func readFuzzEntry(b []byte) (*entry, bool) {
	var e struct {
		Version         int       `json:"version"`
		Key             Key       `json:"key"`
		AccessKeyID     string    `json:"accessKeyId"`
		SecretAccessKey string    `json:"secretAccessKey"`
		SessionToken    string    `json:"sessionToken"`
		Expiration      time.Time `json:"expiration"`
	}
	if json.Unmarshal(b, &e) != nil {
		return nil, false
	}
	out := &entry{Version: e.Version, Key: e.Key, AccessKeyID: e.AccessKeyID, SecretAccessKey: e.SecretAccessKey, SessionToken: e.SessionToken, Expiration: e.Expiration}
	return out, e.Version == 1 && e.AccessKeyID != "" && e.SecretAccessKey != "" && e.SessionToken != "" && !e.Expiration.IsZero()
}

func (e *entry) credentials() sigv4.Credentials {
	return sigv4.Credentials{AccessKeyID: e.AccessKeyID, SecretAccessKey: e.SecretAccessKey, SessionToken: e.SessionToken, Expiration: e.Expiration}
}
