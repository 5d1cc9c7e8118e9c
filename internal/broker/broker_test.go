package broker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/broker"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/testkit"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func key(session string) broker.Key {
	return broker.Key{
		RoleARN:     "arn:aws:iam::111122223333:role/deploy",
		ProfileARN:  "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p",
		SessionName: session, Duration: time.Hour,
	}
}

// backend plays Roles Anywhere on the fake clock: each call answers new
// credentials lasting the key's duration (or life), or fails with down.
type backend struct {
	clock *testkit.Clock
	mu    sync.Mutex
	calls map[broker.Key]int
	total int
	down  error
	life  time.Duration
	took  time.Duration              // the fake clock moves this much during a call
	gate  chan struct{}              // when set, calls wait for it (or their ctx)
	edit  func(c *sigv4.Credentials) // when set, spoils the answer
	seen  chan broker.Key            // when set, gets each call's key as it starts
	ctxs  chan context.Context       // when set, gets each call's ctx
}

func newBackend() *backend {
	return &backend{clock: testkit.NewClock(t0), calls: make(map[broker.Key]int)}
}

func (be *backend) fetch(ctx context.Context, k broker.Key) (sigv4.Credentials, error) {
	be.mu.Lock()
	be.calls[k]++
	be.total++
	n, down, life, took, gate, edit, seen, ctxs := be.total, be.down, be.life, be.took, be.gate, be.edit, be.seen, be.ctxs
	be.mu.Unlock()
	if seen != nil {
		seen <- k
	}
	if ctxs != nil {
		ctxs <- ctx
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return sigv4.Credentials{}, ctx.Err()
		}
	}
	if took > 0 {
		be.clock.Advance(took)
	}
	if down != nil {
		return sigv4.Credentials{}, down
	}
	if life == 0 {
		life = k.Duration
	}
	c := sigv4.Credentials{
		AccessKeyID: fmt.Sprintf("ASIA%04d", n), SecretAccessKey: fmt.Sprintf("secret-%d", n),
		SessionToken: fmt.Sprintf("session-token-%d", n), Expiration: be.clock.Now().Add(life),
	}
	if edit != nil {
		edit(&c)
	}
	return c, nil
}

func (be *backend) set(f func(be *backend)) {
	be.mu.Lock()
	defer be.mu.Unlock()
	f(be)
}

func (be *backend) count() int {
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.total
}

// recorder keeps the broker's events for the test to wait on.
type recorder struct {
	mu      sync.Mutex
	all     []broker.Event
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) add(e broker.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

// of returns the events of type E so far.
func of[E broker.Event](r *recorder) []E {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []E
	for _, e := range r.all {
		if e, ok := e.(E); ok {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits for the n-th event of type E and returns it. The minute
// of real time is a guard against a broker that never gets there, not a
// way of synchronising.
func waitFor[E broker.Event](t *testing.T, r *recorder, n int) E {
	t.Helper()
	limit := time.NewTimer(time.Minute)
	defer limit.Stop()
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if got := of[E](r); len(got) >= n {
			return got[n-1]
		}
		select {
		case <-changed:
		case <-limit.C:
			var e E
			t.Fatalf("waited a minute for %d %T events; %d came", n, e, len(of[E](r)))
		}
	}
}

type fixture struct {
	be   *backend
	ev   *recorder
	b    *broker.Broker
	logs *testkit.Buffer
}

func newFixture(t *testing.T, c broker.Config) *fixture {
	t.Helper()
	f := &fixture{be: newBackend(), ev: newRecorder(), logs: &testkit.Buffer{}}
	c.Fetch, c.Clock, c.Events = f.be.fetch, f.be.clock, f.ev.add
	c.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := broker.New(c)
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
	t.Cleanup(b.Close)
	return f
}

func (f *fixture) get(t *testing.T, k broker.Key) broker.Result {
	t.Helper()
	res, err := f.b.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("Get(%v): %v", k, err)
	}
	f.checkFresh(t, res.Credentials)
	return res
}

// checkFresh: never empty, never within the margin.
func (f *fixture) checkFresh(t *testing.T, c sigv4.Credentials) {
	t.Helper()
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.SessionToken == "" {
		t.Fatalf("empty credentials: %+v", c)
	}
	if left := c.Expiration.Sub(f.be.clock.Now()); left <= broker.DefaultMargin {
		t.Fatalf("credentials with %s left, want more than %s", left, broker.DefaultMargin)
	}
}

func TestHitAfterFetch(t *testing.T) {
	f := newFixture(t, broker.Config{})
	f.be.took = 150 * time.Millisecond
	first := f.get(t, key("s"))
	if first.Cached {
		t.Error("the first answer says it came from the cache")
	}
	again := f.get(t, key("s"))
	if !again.Cached || again.Credentials != first.Credentials {
		t.Errorf("second Get: %+v, want the cached %+v", again, first)
	}
	if n := f.be.count(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	fetched := of[broker.Fetched](f.ev)
	if len(fetched) != 1 || fetched[0].Took != 150*time.Millisecond || fetched[0].Err != nil || fetched[0].Background || fetched[0].Key != key("s") {
		t.Errorf("Fetched events %+v", fetched)
	}
	if hits := of[broker.Hit](f.ev); len(hits) != 1 || hits[0].Key != key("s") {
		t.Errorf("Hit events %+v", hits)
	}
	if stale := of[broker.Stale](f.ev); len(stale) != 0 {
		t.Errorf("Stale events %+v", stale)
	}
}

// TestSingleflight: 1,000 concurrent Gets for a missing key make one
// Fetch, and all get its answer.
func TestSingleflight(t *testing.T) {
	f := newFixture(t, broker.Config{})
	gate := make(chan struct{})
	f.be.gate = gate
	const n = 1000
	results := make([]broker.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.b.Get(context.Background(), key("one-job"))
		}()
	}
	// Every Get but the one that started the fetch has joined it.
	waitFor[broker.Joined](t, f.ev, n-1)
	close(gate)
	wg.Wait()
	if got := f.be.count(); got != 1 {
		t.Fatalf("%d fetches for %d concurrent Gets, want 1", got, n)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Get %d: %v", i, errs[i])
		}
		if results[i].Credentials != results[0].Credentials || results[i].Cached {
			t.Fatalf("Get %d: %+v, want the shared fetch %+v", i, results[i], results[0])
		}
	}
	if res := f.get(t, key("one-job")); !res.Cached || f.be.count() != 1 {
		t.Errorf("afterwards: %+v after %d fetches", res, f.be.count())
	}
}

// TestKeysAreDistinct: each of role, profile, session name and duration
// makes its own session.
func TestKeysAreDistinct(t *testing.T) {
	f := newFixture(t, broker.Config{})
	base := key("gitlab-1-2")
	other := []broker.Key{base, base, base, base}
	other[0].RoleARN += "2"
	other[1].ProfileARN += "2"
	other[2].SessionName = "gitlab-1-3"
	other[3].Duration = 2 * time.Hour
	seen := map[string]bool{f.get(t, base).Credentials.AccessKeyID: true}
	for _, k := range other {
		c := f.get(t, k).Credentials
		if seen[c.AccessKeyID] {
			t.Errorf("%+v shares credentials with another key", k)
		}
		seen[c.AccessKeyID] = true
		if got := f.be.calls[k]; got != 1 {
			t.Errorf("%+v: %d fetches", k, got)
		}
	}
}

// TestRateLimit: 20 distinct keys at 5 a second with a burst of 5: five
// fetch at once, the others wait on the clock, one each 200ms.
func TestRateLimit(t *testing.T) {
	f := newFixture(t, broker.Config{Rate: 5, Burst: 5})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.b.Get(context.Background(), key(fmt.Sprint("job-", i)))
			errs <- err
		}()
	}
	waitFor[broker.Throttled](t, f.ev, n-5)
	waitFor[broker.Fetched](t, f.ev, 5)
	if got := f.be.count(); got != 5 {
		t.Fatalf("%d fetches before the clock moved, want the burst of 5", got)
	}
	var waits []time.Duration
	for _, e := range of[broker.Throttled](f.ev) {
		waits = append(waits, e.Wait)
	}
	for i := 1; i <= n-5; i++ {
		want := time.Duration(i) * 200 * time.Millisecond
		found := false
		for _, w := range waits {
			found = found || w == want
		}
		if !found {
			t.Errorf("no fetch waits %s; waits %v", want, waits)
		}
	}
	for i := 1; i <= n-5; i++ {
		f.be.clock.Advance(200 * time.Millisecond)
		waitFor[broker.Fetched](t, f.ev, 5+i)
		if got, pending := f.be.count(), f.be.clock.Pending(); got != 5+i || pending != n-5-i {
			t.Fatalf("after %s: %d fetches and %d waiting, want %d and %d", time.Duration(i)*200*time.Millisecond, got, pending, 5+i, n-5-i)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// Idle for a second refills the whole burst of 5.
	f.be.clock.Advance(time.Second)
	for i := range 5 {
		f.get(t, key(fmt.Sprint("later-", i)))
	}
	if got := len(of[broker.Throttled](f.ev)); got != n-5 {
		t.Errorf("%d throttled fetches after a refill, want none more", got-(n-5))
	}
}

// TestRateLimitWaitEndsWithContext: a Get waiting for the rate limit
// gives up with its context, no fetch happens, and its place goes back.
func TestRateLimitWaitEndsWithContext(t *testing.T) {
	f := newFixture(t, broker.Config{Rate: 1, Burst: 1})
	f.get(t, key("a"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.b.Get(ctx, key("b"))
		done <- err
	}()
	if th := waitFor[broker.Throttled](t, f.ev, 1); th.Wait != time.Second || th.Key != key("b") {
		t.Errorf("throttled %+v, want key b waiting 1s", th)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: %v", err)
	}
	if r := waitFor[broker.Refused](t, f.ev, 1); !errors.Is(r.Err, context.Canceled) {
		t.Errorf("Refused %+v", r)
	}
	// The next key waits one interval, not two: b gave its place back.
	go func() {
		_, err := f.b.Get(context.Background(), key("c"))
		done <- err
	}()
	if th := waitFor[broker.Throttled](t, f.ev, 2); th.Wait != time.Second || th.Key != key("c") {
		t.Errorf("throttled %+v, want key c waiting 1s", th)
	}
	f.be.clock.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.b.Close()
	if f.be.calls[key("b")] != 0 || f.be.count() != 2 {
		t.Errorf("fetches %v", f.be.calls)
	}
	if n := f.be.clock.Pending(); n != 0 {
		t.Errorf("%d timers left after Close", n)
	}
}

// TestAbandonedFetchFinishes: when every Get waiting for a fetch has
// gone after it passed the rate limit, the CreateSession goes on and its
// answer is cached: a caller that hangs up in a loop costs one session,
// not one per request.
func TestAbandonedFetchFinishes(t *testing.T) {
	f := newFixture(t, broker.Config{})
	gate := make(chan struct{})
	f.be.gate = gate
	f.be.ctxs = make(chan context.Context, 2)
	for i := range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := f.b.Get(ctx, key("s"))
			done <- err
		}()
		if i == 0 {
			fetchCtx := <-f.be.ctxs
			defer func() {
				select {
				case <-fetchCtx.Done():
				default:
					t.Error("the abandoned fetch's context is still open after it ended")
				}
			}()
		} else {
			waitFor[broker.Joined](t, f.ev, i)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Get %d: %v", i, err)
		}
	}
	close(gate)
	waitFor[broker.Fetched](t, f.ev, 1)
	if res := f.get(t, key("s")); !res.Cached {
		t.Error("the abandoned fetch's answer was not cached")
	}
	if n := f.be.count(); n != 1 {
		t.Errorf("%d fetches for five abandoned requests and one more, want 1", n)
	}
}

// TestRefreshAhead: past the refresh point a Get answers from the cache
// and starts one background refresh; Gets meanwhile do not wait for it.
func TestRefreshAhead(t *testing.T) {
	f := newFixture(t, broker.Config{})
	first := f.get(t, key("s"))
	// A one-hour session with a 15m margin refreshes at 15m + 45m/2 left:
	// 22m30s after it was fetched.
	if st := f.b.Status(); len(st) != 1 || !st[0].RefreshAt.Equal(t0.Add(22*time.Minute+30*time.Second)) || !st[0].Refreshed.Equal(t0) {
		t.Fatalf("status %+v", st)
	}
	f.be.clock.Advance(22*time.Minute + 29*time.Second)
	if res := f.get(t, key("s")); !res.Cached || f.be.count() != 1 {
		t.Fatalf("before the refresh point: %+v, %d fetches", res, f.be.count())
	}
	gate := make(chan struct{})
	f.be.set(func(be *backend) { be.gate = gate })
	f.be.clock.Advance(time.Second)
	for range 50 {
		if res := f.get(t, key("s")); !res.Cached || res.Credentials != first.Credentials {
			t.Fatalf("during the refresh: %+v", res)
		}
	}
	close(gate)
	fe := waitFor[broker.Fetched](t, f.ev, 2)
	if !fe.Background || fe.Err != nil {
		t.Errorf("refresh: %+v", fe)
	}
	if n := f.be.count(); n != 2 {
		t.Errorf("%d fetches, want 2: one refresh for all the Gets past the refresh point", n)
	}
	second := f.get(t, key("s"))
	if !second.Cached || second.Credentials == first.Credentials || !second.Credentials.Expiration.Equal(f.be.clock.Now().Add(time.Hour)) {
		t.Errorf("after the refresh: %+v", second)
	}
	if len(of[broker.Retrying](f.ev)) != 0 || len(of[broker.Stale](f.ev)) != 0 {
		t.Error("retries or stale answers without a failure")
	}
}

// TestLastGoodThroughOutage: Roles Anywhere fails from the refresh point
// on. The cached credentials are served (Stale) until they are within the
// margin, the refresh is retried with waits doubling from 1s to the 1m
// cap, then Get says what happened; once Roles Anywhere is back, fresh
// credentials.
func TestLastGoodThroughOutage(t *testing.T) {
	f := newFixture(t, broker.Config{})
	k := key("gitlab-42-1001")
	first := f.get(t, k)
	refused := &rolesanywhere.APIError{StatusCode: 403, Code: "AccessDeniedException", Message: "Unable to assume role"}
	f.be.set(func(be *backend) { be.down = refused })

	f.be.clock.Advance(23 * time.Minute)
	if res := f.get(t, k); !res.Cached || res.Credentials != first.Credentials {
		t.Fatalf("past the refresh point: %+v", res)
	}
	unusable := t0.Add(45 * time.Minute) // an hour less the margin
	var waits []time.Duration
	for i := 1; ; i++ {
		r := waitFor[broker.Retrying](t, f.ev, i)
		if !errors.Is(r.Err, refused) || r.Key != k {
			t.Fatalf("retry %d: %+v", i, r)
		}
		waits = append(waits, r.In)
		if !f.be.clock.Now().Add(r.In).Before(unusable) {
			break
		}
		f.be.clock.Advance(r.In)
		waitFor[broker.Fetched](t, f.ev, i+2)
		if res := f.get(t, k); !res.Cached || res.Credentials != first.Credentials {
			t.Fatalf("during the outage: %+v", res)
		}
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60}
	for i := range want {
		want[i] *= time.Second
	}
	for len(want) < len(waits) {
		want = append(want, time.Minute)
	}
	if diff := cmp.Diff(want, waits); diff != "" {
		t.Errorf("retry waits (-want +got):\n%s", diff)
	}
	stale := of[broker.Stale](f.ev)
	if len(stale) == 0 || !errors.Is(stale[len(stale)-1].Err, refused) || !stale[0].Expiration.Equal(first.Credentials.Expiration) {
		t.Errorf("stale events %+v", stale)
	}
	fetches := f.be.count()
	if fetches != len(waits)+1 {
		t.Errorf("%d fetches for %d retries", fetches, len(waits))
	}

	// One second before the margin: still the last good credentials.
	f.be.clock.Set(unusable.Add(-time.Second))
	if res := f.get(t, k); res.Credentials != first.Credentials {
		t.Fatalf("a second before the margin: %+v", res)
	}
	// At the margin: a clear error, and no extra call to AWS.
	f.be.clock.Set(unusable)
	_, err := f.b.Get(context.Background(), k)
	var be *broker.Error
	if !errors.As(err, &be) {
		t.Fatalf("at the margin: %v, want a *broker.Error", err)
	}
	var ae *rolesanywhere.APIError
	if !errors.As(err, &ae) || ae != refused || be.Key != k || !be.Expiration.Equal(first.Credentials.Expiration) {
		t.Errorf("error %#v does not wrap the refusal", be)
	}
	msg := err.Error()
	for _, s := range []string{"credentials for arn:aws:iam::111122223333:role/deploy (session gitlab-42-1001) expire in 15m0s",
		"Roles Anywhere refused a new session 57s ago (next attempt in 3s)", "AccessDeniedException"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not say %q", msg, s)
		}
	}
	if strings.Contains(msg, first.Credentials.SessionToken) || strings.Contains(msg, first.Credentials.SecretAccessKey) {
		t.Errorf("error %q holds a secret", msg)
	}
	if r := of[broker.Refused](f.ev); len(r) != 1 || r[0].Err != err {
		t.Errorf("Refused events %+v", r)
	}
	if f.be.count() != fetches {
		t.Error("Get within the margin called AWS during the backoff")
	}
	st := f.b.Status()
	if len(st) != 1 || !strings.Contains(st[0].LastError, "AccessDeniedException") || !st[0].NextAttempt.Equal(unusable.Add(3*time.Second)) {
		t.Errorf("status %+v", st)
	}

	// The retry timer fires within the margin: the background refresh
	// stops rather than fetch.
	f.be.clock.Advance(3 * time.Second)
	if rs := waitFor[broker.RefreshStopped](t, f.ev, 1); rs.Key != k || !errors.Is(rs.Err, refused) || !rs.Expiration.Equal(first.Credentials.Expiration) {
		t.Errorf("RefreshStopped %+v", rs)
	}
	if f.be.count() != fetches {
		t.Error("the background refresh fetched within the margin")
	}

	// Roles Anywhere is back: fresh credentials at once.
	f.be.set(func(be *backend) { be.down = nil })
	res := f.get(t, k)
	if res.Cached || res.Credentials == first.Credentials {
		t.Errorf("after the outage: %+v", res)
	}
	if st := f.b.Status(); st[0].LastError != "" || !st[0].NextAttempt.IsZero() {
		t.Errorf("status after recovery %+v", st)
	}
	f.b.Close()
	if n := f.be.clock.Pending(); n != 0 {
		t.Errorf("%d timers pending after Close", n)
	}
	logs := f.logs.String()
	for _, s := range []string{"refreshing credentials failed; serving the cached ones meanwhile", "retry_in=1m0s",
		"cached credentials are within the margin of expiry and no new session could be had"} {
		if !strings.Contains(logs, s) {
			t.Errorf("the log does not say %q:\n%s", s, logs)
		}
	}
	if strings.Contains(logs, "secret-") || strings.Contains(logs, "session-token-") {
		t.Errorf("the log holds a secret:\n%s", logs)
	}
}

// TestNoCredentialsAndUnreachable: a first fetch that cannot reach Roles
// Anywhere is an *Error saying so; Gets during the backoff get it again
// without calling AWS; the backoff doubles; recovery is immediate after
// it.
func TestNoCredentialsAndUnreachable(t *testing.T) {
	f := newFixture(t, broker.Config{})
	k := key("s")
	down := &rolesanywhere.TransportError{URL: "https://rolesanywhere.us-east-1.amazonaws.com", Err: errors.New("connection refused")}
	f.be.down = down
	_, err := f.b.Get(context.Background(), k)
	var be *broker.Error
	if !errors.As(err, &be) || !errors.Is(err, down) || !be.Expiration.IsZero() {
		t.Fatalf("Get: %v", err)
	}
	if want := "no credentials for arn:aws:iam::111122223333:role/deploy (session s): Roles Anywhere could not be reached (next attempt in 1s): calling CreateSession at https://rolesanywhere.us-east-1.amazonaws.com: connection refused"; err.Error() != want {
		t.Errorf("error\n%q\nwant\n%q", err, want)
	}
	if _, err := f.b.Get(context.Background(), k); !errors.Is(err, down) || f.be.count() != 1 {
		t.Fatalf("during the backoff: %v after %d fetches", err, f.be.count())
	}
	f.be.clock.Advance(time.Second)
	if _, err := f.b.Get(context.Background(), k); !errors.Is(err, down) || f.be.count() != 2 {
		t.Fatalf("after the backoff: %v after %d fetches", err, f.be.count())
	}
	f.be.clock.Advance(time.Second)
	if _, err := f.b.Get(context.Background(), k); err == nil || !strings.Contains(err.Error(), "1s ago (next attempt in 1s)") || f.be.count() != 2 {
		t.Fatalf("the backoff doubled to 2s: %v after %d fetches", err, f.be.count())
	}
	f.be.set(func(be *backend) { be.down = nil })
	f.be.clock.Advance(time.Second)
	if res := f.get(t, k); res.Cached {
		t.Error("cached")
	}
	if len(of[broker.Refused](f.ev)) != 4 {
		t.Errorf("Refused events %+v", of[broker.Refused](f.ev))
	}
}

// TestRefusesUnusableAnswers: an answer with an empty field, or with the
// margin or less left, is an error and never handed out.
func TestRefusesUnusableAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *sigv4.Credentials)
		life time.Duration
		want string
	}{
		{"no access key", func(c *sigv4.Credentials) { c.AccessKeyID = "" }, 0, "has no AccessKeyId"},
		{"no secret", func(c *sigv4.Credentials) { c.SecretAccessKey = "" }, 0, "has no SecretAccessKey"},
		{"no token", func(c *sigv4.Credentials) { c.SessionToken = "" }, 0, "has no SessionToken"},
		{"nothing", func(c *sigv4.Credentials) { *c = sigv4.Credentials{} }, 0, "has no AccessKeyId, SecretAccessKey, SessionToken, Expiration"},
		{"no expiration", func(c *sigv4.Credentials) { c.Expiration = time.Time{} }, 0, "has no Expiration"},
		{"expired", nil, -time.Minute, "it has -1m0s left"},
		{"at the margin", nil, 15 * time.Minute, "it has 15m0s left"},
		{"short session", nil, 10 * time.Minute, "the session for arn:aws:iam::111122223333:role/deploy is too short: it has 10m0s left, and credentials are handed out only with more than 15m0s left; " +
			"the role's maximum session duration or the profile's durationSeconds may be lower than the 1h0m0s asked for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, broker.Config{})
			f.be.edit, f.be.life = tc.edit, tc.life
			res, err := f.b.Get(context.Background(), key("s"))
			var be *broker.Error
			if !errors.As(err, &be) || res != (broker.Result{}) {
				t.Fatalf("Get = %+v, %v; want a *broker.Error", res, err)
			}
			if !strings.Contains(err.Error(), "Roles Anywhere's new session was unusable") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-") || strings.Contains(err.Error(), "session-token-") {
				t.Errorf("error %q holds a secret", err)
			}
			if fe := of[broker.Fetched](f.ev); len(fe) != 1 || fe[0].Err == nil {
				t.Errorf("Fetched %+v", fe)
			}
		})
	}
}

// TestShortRefreshKeepsLastGood: a refresh that answers too short a
// session is a failed refresh: the last good credentials stay.
func TestShortRefreshKeepsLastGood(t *testing.T) {
	f := newFixture(t, broker.Config{})
	first := f.get(t, key("s"))
	f.be.set(func(be *backend) { be.life = 5 * time.Minute })
	f.be.clock.Advance(30 * time.Minute)
	f.get(t, key("s"))
	r := waitFor[broker.Retrying](t, f.ev, 1)
	if !strings.Contains(r.Err.Error(), "too short") {
		t.Errorf("retrying after %v", r.Err)
	}
	if res := f.get(t, key("s")); res.Credentials != first.Credentials {
		t.Errorf("after a short refresh: %+v", res)
	}
	if len(of[broker.Stale](f.ev)) != 1 {
		t.Errorf("stale events %+v", of[broker.Stale](f.ev))
	}
}

// TestRefusesShortKeys: Get refuses sessions shorter than MinDuration
// (which New does not judge) without calling AWS.
func TestRefusesShortKeys(t *testing.T) {
	f := newFixture(t, broker.Config{})
	k := key("s")
	k.Duration = 20 * time.Minute
	_, err := f.b.Get(context.Background(), k)
	if err == nil || !strings.Contains(err.Error(), "too short") || !strings.Contains(err.Error(), "at least 30m0s") {
		t.Errorf("a 20m session: %v", err)
	}
	if f.be.count() != 0 || len(of[broker.Refused](f.ev)) != 1 {
		t.Errorf("%d fetches, refused %+v", f.be.count(), of[broker.Refused](f.ev))
	}
	k.Duration = broker.MinDuration
	res := f.get(t, k)
	// A 30m session refreshes 7m30s after its fetch, 22m30s before expiry.
	if st := f.b.Status(); !st[0].RefreshAt.Equal(t0.Add(7*time.Minute + 30*time.Second)) {
		t.Errorf("refresh at %v", st[0].RefreshAt)
	}
	_ = res
	// A larger margin raises the floor to twice the margin.
	g := newFixture(t, broker.Config{Margin: 20 * time.Minute})
	if _, err := g.b.Get(context.Background(), k); err == nil || !strings.Contains(err.Error(), "at least 40m0s") {
		t.Errorf("a 30m session with a 20m margin: %v", err)
	}
	// A smaller margin lowers it: 15-minute sessions with a 5m margin.
	h := newFixture(t, broker.Config{Margin: 5 * time.Minute})
	k.Duration = 15 * time.Minute
	if _, err := h.b.Get(context.Background(), k); err != nil {
		t.Errorf("a 15m session with a 5m margin: %v", err)
	}
	k.Duration = 9 * time.Minute
	if _, err := h.b.Get(context.Background(), k); err == nil || !strings.Contains(err.Error(), "at least 10m0s") {
		t.Errorf("a 9m session with a 5m margin: %v", err)
	}
}

// TestMaxEntries: a full cache drops entries without usable credentials
// first, then the soonest-expiring.
func TestMaxEntries(t *testing.T) {
	f := newFixture(t, broker.Config{MaxEntries: 3})
	k := func(name string, d time.Duration) broker.Key {
		k := key(name)
		k.Duration = d
		return k
	}
	f.get(t, k("a", time.Hour))
	f.get(t, k("b", 2*time.Hour))
	f.get(t, k("c", 3*time.Hour))
	f.be.clock.Advance(50 * time.Minute) // a has 10m left: unusable
	f.get(t, k("d", time.Hour))          // ends at 1h50m, before b
	if got := sessions(f.b.Status()); !cmp.Equal(got, []string{"b", "c", "d"}) {
		t.Errorf("after d: %v", got)
	}
	f.get(t, k("e", time.Hour))
	if got := sessions(f.b.Status()); !cmp.Equal(got, []string{"b", "c", "e"}) {
		t.Errorf("after e: %v", got)
	}
	want := []broker.Evicted{{Key: k("a", time.Hour), Expired: true}, {Key: k("d", time.Hour)}}
	if diff := cmp.Diff(want, of[broker.Evicted](f.ev)); diff != "" {
		t.Errorf("evictions (-want +got):\n%s", diff)
	}
	// Gets for what is left are still hits.
	f.get(t, k("b", 2*time.Hour))
	if n := f.be.count(); n != 5 {
		t.Errorf("%d fetches", n)
	}
}

func sessions(st []broker.EntryStatus) []string {
	var out []string
	for _, e := range st {
		out = append(out, e.Key.SessionName)
	}
	return out
}

func TestStatus(t *testing.T) {
	f := newFixture(t, broker.Config{})
	f.get(t, key("b"))
	f.be.set(func(be *backend) { be.down = errors.New("boom") })
	f.be.clock.Advance(time.Minute)
	if _, err := f.b.Get(context.Background(), key("a")); err == nil || !strings.Contains(err.Error(), "getting a new session failed") {
		t.Errorf("Get: %v", err)
	}
	want := []broker.EntryStatus{
		{Key: key("a"), LastError: "boom", LastErrorAt: t0.Add(time.Minute), NextAttempt: t0.Add(time.Minute + time.Second)},
		{Key: key("b"), Expiration: t0.Add(time.Hour), Refreshed: t0, RefreshAt: t0.Add(22*time.Minute + 30*time.Second)},
	}
	if diff := cmp.Diff(want, f.b.Status()); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}

// TestCloseWaitsForBackgroundWork: Close ends a refresh under way and
// waits for it; Get then returns ErrClosed.
func TestCloseWaitsForBackgroundWork(t *testing.T) {
	f := newFixture(t, broker.Config{})
	f.get(t, key("s"))
	f.be.set(func(be *backend) {
		be.gate = make(chan struct{}) // only the context ends the call
		be.seen = make(chan broker.Key, 1)
	})
	f.be.clock.Advance(30 * time.Minute)
	f.get(t, key("s"))
	<-f.be.seen
	f.b.Close()
	if fe := of[broker.Fetched](f.ev); len(fe) != 2 || !errors.Is(fe[1].Err, context.Canceled) {
		t.Errorf("Fetched %+v: Close must have ended the refresh", fe)
	}
	if _, err := f.b.Get(context.Background(), key("s")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if st := f.b.Status(); st[0].LastError != "" {
		t.Errorf("closing is no failure: %+v", st)
	}
	f.b.Close() // twice is fine
}

// TestCloseEndsARetryWait: Close stops a background refresh waiting to
// retry.
func TestCloseEndsARetryWait(t *testing.T) {
	f := newFixture(t, broker.Config{})
	f.get(t, key("s"))
	f.be.set(func(be *backend) { be.down = errors.New("boom") })
	f.be.clock.Advance(30 * time.Minute)
	f.get(t, key("s"))
	waitFor[broker.Retrying](t, f.ev, 1)
	f.b.Close()
	if n := f.be.clock.Pending(); n != 0 {
		t.Errorf("%d timers pending after Close", n)
	}
}

func TestNew(t *testing.T) {
	fetch := newBackend().fetch
	for name, c := range map[string]broker.Config{
		"no fetch":         {},
		"negative margin":  {Fetch: fetch, Margin: -1},
		"negative rate":    {Fetch: fetch, Rate: -1},
		"negative burst":   {Fetch: fetch, Burst: -1},
		"negative entries": {Fetch: fetch, MaxEntries: -1},
		"backoff inverted": {Fetch: fetch, BackoffMin: time.Minute, BackoffMax: time.Second},
	} {
		if b, err := broker.New(c); err == nil {
			b.Close()
			t.Errorf("%s: no error", name)
		}
	}
	b, err := broker.New(broker.Config{Fetch: fetch})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestBackoffSettings: BackoffMin and BackoffMax bound the retries.
func TestBackoffSettings(t *testing.T) {
	f := newFixture(t, broker.Config{BackoffMin: 10 * time.Second, BackoffMax: 25 * time.Second})
	f.get(t, key("s"))
	f.be.set(func(be *backend) { be.down = errors.New("boom") })
	f.be.clock.Advance(30 * time.Minute)
	f.get(t, key("s"))
	var waits []time.Duration
	for i := 1; i <= 4; i++ {
		r := waitFor[broker.Retrying](t, f.ev, i)
		waits = append(waits, r.In)
		f.be.clock.Advance(r.In)
	}
	if want := []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second}; !cmp.Equal(want, waits) {
		t.Errorf("waits %v, want %v", waits, want)
	}
}

// TestConcurrentMix runs Gets of a few keys from many goroutines while
// the clock moves and Roles Anywhere comes and goes, for the race
// detector; every answer must be usable.
func TestConcurrentMix(t *testing.T) {
	f := newFixture(t, broker.Config{Rate: 1000, Burst: 1000})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := f.b.Get(context.Background(), key(fmt.Sprint(j%3)))
				if err != nil {
					continue
				}
				if res.Credentials.SessionToken == "" || res.Credentials.Expiration.IsZero() {
					t.Errorf("goroutine %d: empty credentials", i)
					return
				}
				_ = f.b.Status()
			}
		}()
	}
	for i := range 200 {
		f.be.set(func(be *backend) {
			be.down = nil
			if i%7 < 3 {
				be.down = errors.New("down")
			}
		})
		f.be.clock.Advance(20 * time.Second)
	}
	close(stop)
	wg.Wait()
}

func BenchmarkGetHit(b *testing.B) {
	be := newBackend()
	br, err := broker.New(broker.Config{Fetch: be.fetch, Clock: be.clock})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	k := key("gitlab-42-1001")
	if _, err := br.Get(context.Background(), k); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := br.Get(ctx, k); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
