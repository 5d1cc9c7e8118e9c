package credupdate_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/credfile"
	"github.com/keyless-dev/keyless/internal/credupdate"
	"github.com/keyless-dev/keyless/internal/emulator/emulatortest"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// The file around the profile: what no update may change, byte for byte.
const (
	before = "# managed by hand\n[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = handwritten\n\n; keyless keeps ci fresh\n[ci]\nregion = us-east-1\n"
	after  = "\n[other]\n# its own comment\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other\n"
)

type env struct {
	t      *testing.T
	clock  *testkit.Clock
	emu    *emulatortest.Server
	fail   atomic.Bool // the endpoint refuses every CreateSession
	file   string
	events chan credupdate.Event
	cfg    credupdate.Config
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clock: testkit.NewClock(time.Now().Truncate(time.Second)), events: make(chan credupdate.Event, 100)}
	root := pkitest.NewRoot(t, "update-root")
	inter := root.Intermediate(t, "update-int")
	e.emu = emulatortest.NewAt(t, e.clock.Now, nil, root.Cert)
	// In front of the emulator: a switch that makes the endpoint refuse,
	// as Roles Anywhere does (a final 403, so no retry waits on the clock).
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.fail.Load() {
			w.Header().Set("X-Amzn-Errortype", "AccessDeniedException")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"message":"refused by the test"}`))
			return
		}
		e.emu.Emulator.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	dir := t.TempDir()
	crt, keyFile := inter.WriteIdentity(t, dir)
	e.file = filepath.Join(dir, "aws", "credentials")
	os.MkdirAll(filepath.Dir(e.file), 0o700)
	if err := os.WriteFile(e.file, []byte(before+after), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg = credupdate.Config{
		Fetcher: &awscreds.Fetcher{Clock: e.clock, Getenv: func(string) string { return "" }},
		Request: awscreds.Request{Files: identity.Files{Certificate: crt, PrivateKey: keyFile}, TrustAnchorARN: e.emu.TrustAnchorARN,
			ProfileARN: e.emu.ProfileARN, RoleARN: e.emu.RoleARN, DurationSeconds: 3600, Endpoint: front.URL,
			CacheDir: filepath.Join(dir, "cache")},
		Profile: "ci", File: e.file, Clock: e.clock,
		Events: func(ev credupdate.Event) { e.events <- ev },
	}
	return e
}

// next returns the next event, which must be of type T.
func next[T credupdate.Event](e *env) T {
	e.t.Helper()
	select {
	case ev := <-e.events:
		got, ok := ev.(T)
		if !ok {
			var want T
			e.t.Fatalf("event %T %+v, want %T", ev, ev, want)
		}
		return got
	case <-time.After(time.Minute):
		var want T
		e.t.Fatalf("no %T event within a minute", want)
	}
	panic("unreachable")
}

// profile reads the file, checks that everything but the profile's
// credential keys is as it was and that it is 0600, and returns the
// profile's credentials.
func (e *env) profile() credfile.Credentials {
	e.t.Helper()
	data, err := os.ReadFile(e.file)
	if err != nil {
		e.t.Fatal(err)
	}
	s := string(data)
	if !strings.HasPrefix(s, before) || !strings.HasSuffix(s, after) {
		e.t.Fatalf("the rest of the file changed:\n%s", s)
	}
	middle := strings.TrimSuffix(strings.TrimPrefix(s, before), after)
	if lines := strings.Split(strings.TrimSuffix(middle, "\n"), "\n"); len(lines) != 3 {
		e.t.Fatalf("the profile holds %q, want the three keys after region", middle)
	}
	if info, err := os.Stat(e.file); err != nil || info.Mode().Perm() != 0o600 {
		e.t.Fatalf("mode %v %v, want 0600", info.Mode(), err)
	}
	if names := testkit.DirNames(e.t, filepath.Dir(e.file)); len(names) != 1 {
		e.t.Fatalf("the directory holds %v: a temporary file was left", names)
	}
	c, ok := credfile.Get(data, "ci")
	if !ok {
		e.t.Fatal("profile ci is gone")
	}
	return c
}

func (e *env) run(ctx context.Context) (*credupdate.Updater, chan error) {
	e.t.Helper()
	u, err := credupdate.New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	return u, done
}

// TestStaysFreshAcrossExpiry: the profile gets credentials at start and
// new ones when a third of their life is left, before they expire; the
// rest of the file stays byte for byte, and the file stays 0600.
func TestStaysFreshAcrossExpiry(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, done := e.run(ctx)

	first := next[credupdate.Wrote](e)
	if first.Change != (credfile.Change{Added: 3}) || !first.Expiration.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("first write %+v", first)
	}
	c1 := e.profile()
	if !strings.HasPrefix(c1.AccessKeyID, "ASIA") || !e.emu.Emulator.Known(c1.AccessKeyID) {
		t.Fatalf("credentials %q are not the emulator's", c1.AccessKeyID)
	}
	s := next[credupdate.Scheduled](e)
	if want := first.Expiration.Add(-20 * time.Minute); !s.At.Equal(want) || s.Retry {
		t.Fatalf("scheduled %+v, want at %s (a third of the hour left)", s, want)
	}

	// A minute before the refresh point nothing happens.
	e.clock.Set(s.At.Add(-time.Minute))
	if c := e.profile(); c != c1 {
		t.Fatal("refreshed early")
	}
	e.clock.Set(s.At)
	second := next[credupdate.Wrote](e)
	c2 := e.profile()
	if second.Change != (credfile.Change{Replaced: 3}) || c2.AccessKeyID == c1.AccessKeyID || c2.SessionToken == c1.SessionToken {
		t.Fatalf("second write %+v: credentials not replaced", second)
	}
	s2 := next[credupdate.Scheduled](e)

	// Past the first credentials' expiry the file holds live ones.
	e.clock.Set(first.Expiration.Add(time.Second))
	if c := e.profile(); c != c2 || !e.emu.Emulator.Known(c.AccessKeyID) || !e.clock.Now().Before(second.Expiration) {
		t.Fatal("after the first expiry the file does not hold the second, live credentials")
	}
	if !s2.At.Equal(second.Expiration.Add(-20 * time.Minute)) {
		t.Fatalf("second schedule %+v", s2)
	}
	e.clock.Set(s2.At)
	next[credupdate.Wrote](e)
	next[credupdate.Scheduled](e)
	if c := e.profile(); c == c2 {
		t.Fatal("third write did not change the credentials")
	}

	cancel()
	next[credupdate.Stopping](e)
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after the context ended", err)
	}
}

// TestFailureKeepsCredentials: a failed refresh leaves the credentials in
// the file, even past their expiry, and retries with a doubling, capped
// wait; the next success replaces them.
func TestFailureKeepsCredentials(t *testing.T) {
	e := newEnv(t)
	e.cfg.BackoffMin, e.cfg.BackoffMax = 30*time.Second, 50*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done := e.run(ctx)
	first := next[credupdate.Wrote](e)
	c1 := e.profile()
	s := next[credupdate.Scheduled](e)

	e.fail.Store(true)
	e.clock.Set(s.At)
	for i, want := range []time.Duration{30 * time.Second, 50 * time.Second, 50 * time.Second} {
		f := next[credupdate.Failed](e)
		var api *rolesanywhere.APIError
		if f.RetryIn != want || !errors.As(f.Err, &api) || api.Code != "AccessDeniedException" || !f.Expiration.Equal(first.Expiration) || f.Expired {
			t.Fatalf("failure %d: %+v, want a retry in %s", i+1, f, want)
		}
		if c := e.profile(); c != c1 {
			t.Fatalf("failure %d changed the credentials", i+1)
		}
		r := next[credupdate.Scheduled](e)
		if !r.Retry || !r.At.Equal(e.clock.Now().Add(want)) {
			t.Fatalf("retry scheduled %+v", r)
		}
		e.clock.Set(r.At)
	}
	// Past the expiry, still failing: the expired credentials stay.
	next[credupdate.Failed](e)
	next[credupdate.Scheduled](e)
	e.clock.Set(first.Expiration)
	if f := next[credupdate.Failed](e); !f.Expired {
		t.Fatalf("failure after the expiry %+v, want Expired", f)
	}
	if c := e.profile(); c != c1 {
		t.Fatal("the expired credentials were removed")
	}
	r := next[credupdate.Scheduled](e)
	e.fail.Store(false)
	e.clock.Set(r.At)
	w := next[credupdate.Wrote](e)
	if c := e.profile(); c == c1 || !w.Expiration.After(e.clock.Now()) {
		t.Fatal("the refresh after the failures did not write new credentials")
	}
	next[credupdate.Scheduled](e)
	cancel()
	next[credupdate.Stopping](e)
	<-done
}

// TestRefreshNow: RefreshNow (SIGHUP) writes new credentials at once.
func TestRefreshNow(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u, done := e.run(ctx)
	next[credupdate.Wrote](e)
	c1 := e.profile()
	next[credupdate.Scheduled](e)
	u.RefreshNow()
	next[credupdate.Asked](e)
	next[credupdate.Wrote](e)
	if c := e.profile(); c == c1 {
		t.Fatal("RefreshNow did not replace the credentials")
	}
	next[credupdate.Scheduled](e)
	cancel()
	next[credupdate.Stopping](e)
	<-done
}

// TestOnce writes once and leaves no timer behind.
func TestOnce(t *testing.T) {
	e := newEnv(t)
	u, err := credupdate.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := u.Once(context.Background())
	if err != nil || w.Profile != "ci" || w.File != e.file || !strings.Contains(w.AssumedRoleARN, ":assumed-role/ci-deployer/") {
		t.Fatalf("%+v %v", w, err)
	}
	e.profile()
	if n := e.clock.Pending(); n != 0 {
		t.Fatalf("%d timers pending after Once", n)
	}
	if len(e.events) != 0 {
		t.Fatalf("Once sent events")
	}
}

// TestFirstFailureIsFatal: Run returns the first write's error and leaves
// the file alone.
func TestFirstFailureIsFatal(t *testing.T) {
	e := newEnv(t)
	e.fail.Store(true)
	_, done := e.run(context.Background())
	var api *rolesanywhere.APIError
	if err := <-done; !errors.As(err, &api) {
		t.Fatalf("Run returned %v, want the endpoint's refusal", err)
	}
	if data, _ := os.ReadFile(e.file); string(data) != before+after {
		t.Fatalf("file changed: %q", data)
	}
}

// TestUnwritableFileFailsLikeTheEndpoint: a refresh that cannot write the
// file (someone added a second [ci]) is a failure like any other: the
// file is not touched and the refresh is retried.
func TestUnwritableFileFailsLikeTheEndpoint(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done := e.run(ctx)
	next[credupdate.Wrote](e)
	s := next[credupdate.Scheduled](e)
	data, _ := os.ReadFile(e.file)
	broken := string(data) + "[ci]\n"
	os.WriteFile(e.file, []byte(broken), 0o600)
	e.clock.Set(s.At)
	f := next[credupdate.Failed](e)
	var dup *credfile.DuplicateProfileError
	if !errors.As(f.Err, &dup) {
		t.Fatalf("failure %v, want the duplicate profile", f.Err)
	}
	if data, _ := os.ReadFile(e.file); string(data) != broken {
		t.Fatal("the file was changed")
	}
	next[credupdate.Scheduled](e)
	cancel()
	next[credupdate.Stopping](e)
	<-done
}

func TestRefreshAt(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for life, left := range map[time.Duration]time.Duration{
		time.Hour: 20 * time.Minute, 15 * time.Minute: 5 * time.Minute, 12 * time.Hour: 4 * time.Hour,
	} {
		if got := credupdate.RefreshAt(t0, t0.Add(life)); !got.Equal(t0.Add(life - left)) {
			t.Errorf("lifetime %s: refresh at %s, want with %s left", life, got, left)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for name, cfg := range map[string]credupdate.Config{
		"no fetcher": {File: "f", Profile: "p"},
		"no file":    {Fetcher: &awscreds.Fetcher{}, Profile: "p"},
		"profile":    {Fetcher: &awscreds.Fetcher{}, File: "f", Profile: "profile p"},
		"backoff":    {Fetcher: &awscreds.Fetcher{}, File: "f", Profile: "p", BackoffMin: time.Minute, BackoffMax: time.Second},
	} {
		if _, err := credupdate.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestStopDuringFirstWrite: a context that ends before the first write
// (SIGTERM while starting) stops Run cleanly, with nothing written.
func TestStopDuringFirstWrite(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, done := e.run(ctx)
	next[credupdate.Stopping](e)
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if data, _ := os.ReadFile(e.file); string(data) != before+after {
		t.Fatalf("file changed: %q", data)
	}
}
