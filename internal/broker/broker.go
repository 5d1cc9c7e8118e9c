// Package broker is the agent's credential cache: it hands out AWS
// credentials per Key (role, profile, session name, duration), making one
// Roles Anywhere CreateSession per key at a time (singleflight) under a
// global rate limit, refreshing ahead so that every answer has more than
// a margin (15 minutes, when botocore refreshes) left, and serving the
// last good credentials through an outage until they are within that
// margin, then a clear *Error. It never answers with empty or expired
// credentials.
//
// It is a use case: internal/agent imports it. It takes its fetch
// function, clock and logger in a Config, so it is tested on a fake clock;
// it starts no timers of its own and makes no network calls itself.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Durations and limits.
const (
	// DefaultMargin: never answer with this little left, because botocore
	// (and the SDKs that copy it) refresh container credentials 15
	// minutes before they expire; an answer inside that window would be
	// refetched at once.
	DefaultMargin = 15 * time.Minute
	// MinDuration is twice the default margin: a session must outlive
	// the margin by as much again to leave time to refresh it ahead. A
	// smaller Config.Margin lowers it (keyless serve takes 15-minute
	// sessions, as AWS's helper does).
	MinDuration = 2 * DefaultMargin
	// DefaultDuration is Roles Anywhere's own default session length.
	DefaultDuration = time.Hour
	// DefaultRate keeps CreateSession calls at half of AWS's quota of 10
	// per second per account and region, leaving room for other clients.
	DefaultRate  = 5.0
	DefaultBurst = 5
	// DefaultMaxEntries bounds the cache's memory (a few hundred bytes an
	// entry) however many distinct session names callers bring.
	DefaultMaxEntries = 10000
	// DefaultBackoffMin and DefaultBackoffMax bound the wait between
	// attempts after a failure, so an outage does not hammer AWS.
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = time.Minute
)

// ErrClosed is Get's error after Close.
var ErrClosed = errors.New("broker: closed")

// Key names one kind of session: credentials are cached per Key.
type Key struct {
	RoleARN, ProfileARN, SessionName string
	Duration                         time.Duration
}

func (k Key) String() string {
	return fmt.Sprintf("%s (session %s)", k.RoleARN, k.SessionName)
}

// Fetch makes one CreateSession for k. It must be safe for concurrent
// use (for distinct keys) and end when ctx ends.
type Fetch func(ctx context.Context, k Key) (sigv4.Credentials, error)

// Config configures a Broker. Zero values mean the defaults.
type Config struct {
	Fetch  Fetch
	Clock  clock.Clock  // nil: the real clock
	Logger *slog.Logger // nil: discard
	// Margin: never answer with this much or less left; default 15m.
	Margin time.Duration
	// Rate is CreateSession calls a second across all keys, Burst how
	// many may go at once; defaults 5 and 5.
	Rate  float64
	Burst int
	// MaxEntries bounds the cache; when it is full, entries without
	// usable credentials go first, then the soonest-expiring. Entries
	// being fetched are never dropped. Default 10000.
	MaxEntries int
	// BackoffMin and BackoffMax bound the wait after a failed fetch, which
	// doubles from one to the other; defaults 1s and 1m.
	BackoffMin, BackoffMax time.Duration
	// Events receives what the broker does (Hit, Stale, Joined,
	// Throttled, Fetched, Retrying, RefreshStopped, Refused, Evicted), from any
	// goroutine, never with the broker's lock held: it must be safe for
	// concurrent use, and quick. Nil ignores them.
	Events func(Event)
}

// Result is Get's answer. Cached tells an answer from the cache from one
// fetched for this call (or for the fetch it joined).
type Result struct {
	Credentials sigv4.Credentials
	Cached      bool
}

// EntryStatus is one cached key, for keyless agent status.
type EntryStatus struct {
	Key Key
	// Expiration of the credentials held; zero when there are none.
	Expiration time.Time
	// Refreshed is when they were fetched; RefreshAt when they will be
	// refreshed ahead (on the next Get after it).
	Refreshed, RefreshAt time.Time
	// Fetching: a fetch is under way.
	Fetching bool
	// LastError and LastErrorAt are the last failed fetch since the last
	// success; NextAttempt is when the next one may start.
	LastError                string
	LastErrorAt, NextAttempt time.Time
}

// Error is Get's refusal when it has no credentials with more than the
// margin left and the last fetch failed: it names the role and says how
// long ago and why. It wraps the fetch's error (a *rolesanywhere.APIError
// or *rolesanywhere.TransportError from the agent's fetch, say).
type Error struct {
	Key Key
	// Expiration of the last good credentials; zero when there were none.
	Expiration time.Time
	// At is when the fetch failed; NextAttempt when another may start.
	At, NextAttempt time.Time
	Err             error
	msg             string
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.Err }

// Broker caches credentials. It is safe for concurrent use.
type Broker struct {
	fetch                  Fetch
	clock                  clock.Clock
	log                    *slog.Logger
	margin                 time.Duration
	maxEntries             int
	backoffMin, backoffMax time.Duration
	events                 func(Event)
	limit                  *bucket

	ctx    context.Context // ends at Close: cancels fetches and retries
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	closed  bool
	entries map[Key]*entry
}

// entry is one key's state, guarded by Broker.mu.
type entry struct {
	key                  Key
	creds                sigv4.Credentials // the last good ones; zero when none
	fetchedAt, refreshAt time.Time
	lastErr              error // the last failure since the last success
	lastErrAt, retryAt   time.Time
	backoff              time.Duration
	flight               *flight // the fetch under way, if any
	refreshing           bool    // a background refresh (with its retries) runs
}

// flight is one fetch that Gets share.
type flight struct {
	ctx        context.Context
	cancel     context.CancelFunc
	background bool
	waiters    int           // foreground Gets waiting; at 0 a foreground fetch is abandoned
	limited    chan struct{} // closed once past the rate limit (with a slot, or giving it back)
	done       chan struct{}
	// Set before done closes.
	creds sigv4.Credentials
	err   error
}

// New checks c and returns a Broker. It does not judge durations: the
// agent's configuration does, and Get refuses keys shorter than
// MinDuration.
func New(c Config) (*Broker, error) {
	if c.Fetch == nil {
		return nil, errors.New("broker: a fetch function is required")
	}
	if c.Margin < 0 || c.Rate < 0 || c.Burst < 0 || c.MaxEntries < 0 || c.BackoffMin < 0 || c.BackoffMax < 0 {
		return nil, errors.New("broker: margin, rate, burst, entries and backoff cannot be negative")
	}
	b := &Broker{
		fetch: c.Fetch, clock: clock.Or(c.Clock), log: logline.Or(c.Logger),
		margin: c.Margin, maxEntries: c.MaxEntries, backoffMin: c.BackoffMin, backoffMax: c.BackoffMax,
		events: c.Events, entries: make(map[Key]*entry),
	}
	if b.margin == 0 {
		b.margin = DefaultMargin
	}
	if b.maxEntries == 0 {
		b.maxEntries = DefaultMaxEntries
	}
	if b.backoffMin == 0 {
		b.backoffMin = DefaultBackoffMin
	}
	if b.backoffMax == 0 {
		b.backoffMax = max(DefaultBackoffMax, b.backoffMin)
	}
	if b.backoffMax < b.backoffMin {
		return nil, fmt.Errorf("broker: the longest backoff %s is shorter than the first %s", b.backoffMax, b.backoffMin)
	}
	rate, burst := c.Rate, c.Burst
	if rate == 0 {
		rate = DefaultRate
	}
	if burst == 0 {
		burst = DefaultBurst
	}
	b.limit = newBucket(rate, burst)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

func (b *Broker) emit(e Event) {
	if b.events != nil {
		b.events(e)
	}
}

// usable: more than the margin left.
func (b *Broker) usable(e *entry, now time.Time) bool {
	return !e.creds.Expiration.IsZero() && e.creds.Expiration.Sub(now) > b.margin
}

// Get returns credentials for k with more than the margin left: cached,
// else fetched once for all the Gets of k that wait meanwhile, subject to
// the global rate limit (waits are bounded by ctx). Past the refresh
// point (the margin plus half of what was left beyond it when they were
// fetched) it answers from the cache and starts one background refresh;
// a failed refresh keeps the cached credentials, served until they are
// within the margin, and is retried with capped backoff. Without usable
// credentials after a failure, it returns an *Error (at once while the
// backoff lasts). Keys shorter than twice the margin (MinDuration with
// the default margin) are refused.
func (b *Broker) Get(ctx context.Context, k Key) (Result, error) {
	if least := 2 * b.margin; k.Duration < least {
		err := fmt.Errorf("broker: a session of %s for %s is too short: credentials are handed out only with more than %s left, so sessions must last at least %s",
			k.Duration, k.RoleARN, b.margin, least)
		b.emit(Refused{Key: k, Err: err})
		return Result{}, err
	}
	// The hit path takes the read lock only.
	b.mu.RLock()
	if e := b.entries[k]; e != nil && !b.closed {
		now := b.clock.Now()
		if b.usable(e, now) && (now.Before(e.refreshAt) || e.refreshing || e.flight != nil) {
			res, lastErr := Result{Credentials: e.creds, Cached: true}, e.lastErr
			b.mu.RUnlock()
			b.hit(k, res, lastErr)
			return res, nil
		}
	}
	b.mu.RUnlock()

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.emit(Refused{Key: k, Err: ErrClosed})
		return Result{}, ErrClosed
	}
	now := b.clock.Now()
	e, evicted := b.entry(k, now)
	if b.usable(e, now) {
		if !now.Before(e.refreshAt) && !e.refreshing && e.flight == nil {
			e.refreshing = true
			b.start(e, true)
		}
		res, lastErr := Result{Credentials: e.creds, Cached: true}, e.lastErr
		b.mu.Unlock()
		b.emitEvicted(evicted)
		b.hit(k, res, lastErr)
		return res, nil
	}
	f, joined := e.flight, true
	if f == nil {
		if e.lastErr != nil && now.Before(e.retryAt) {
			err := b.failure(e, now)
			b.mu.Unlock()
			b.emitEvicted(evicted)
			b.emit(Refused{Key: k, Err: err})
			return Result{}, err
		}
		f, joined = b.start(e, false), false
	}
	f.waiters++
	b.mu.Unlock()
	b.emitEvicted(evicted)
	if joined {
		b.emit(Joined{Key: k})
	}

	select {
	case <-f.done:
	case <-ctx.Done():
		b.mu.Lock()
		f.waiters--
		abandoned := f.waiters == 0 && !f.background
		if abandoned {
			select {
			case <-f.limited:
				// Past the rate limit, the CreateSession is on its way
				// and counts against AWS's quota: let it finish and
				// cache its answer for the next Get, or a caller that
				// hangs up in a loop would spend the rate limit of every
				// other job.
				abandoned = false
			default:
				// Still waiting for the rate limit: nobody waits for it
				// any more, so end it and give its place back.
				f.cancel()
				if e.flight == f {
					e.flight = nil
				}
			}
		}
		b.mu.Unlock()
		if abandoned {
			// Once the fetch has left the rate limit (at once, its context
			// having ended), its place there is given back.
			<-f.limited
		}
		err := fmt.Errorf("waiting for credentials for %s: %w", k, ctx.Err())
		b.emit(Refused{Key: k, Err: err})
		return Result{}, err
	}
	if f.err != nil {
		b.emit(Refused{Key: k, Err: f.err})
		return Result{}, f.err
	}
	return Result{Credentials: f.creds}, nil
}

func (b *Broker) hit(k Key, res Result, lastErr error) {
	if b.events == nil {
		return
	}
	b.events(Hit{Key: k})
	if lastErr != nil {
		b.events(Stale{Key: k, Expiration: res.Credentials.Expiration, Err: lastErr})
	}
}

func (b *Broker) emitEvicted(evicted []Evicted) {
	for _, e := range evicted {
		b.emit(e)
	}
}

// entry returns k's entry, making room for it when it is new. b.mu is
// held.
func (b *Broker) entry(k Key, now time.Time) (*entry, []Evicted) {
	if e := b.entries[k]; e != nil {
		return e, nil
	}
	var evicted []Evicted
	if len(b.entries) >= b.maxEntries {
		busy := func(e *entry) bool { return e.flight != nil || e.refreshing }
		for key, e := range b.entries {
			if !busy(e) && !b.usable(e, now) {
				delete(b.entries, key)
				evicted = append(evicted, Evicted{Key: key, Expired: true})
			}
		}
		for len(b.entries) >= b.maxEntries {
			var soonest *entry
			for _, e := range b.entries {
				if !busy(e) && (soonest == nil || e.creds.Expiration.Before(soonest.creds.Expiration)) {
					soonest = e
				}
			}
			if soonest == nil {
				break // all busy: the bound gives way to work under way
			}
			delete(b.entries, soonest.key)
			evicted = append(evicted, Evicted{Key: soonest.key})
		}
		if len(evicted) > 0 {
			b.log.Debug("credential cache full; dropped entries", "dropped", len(evicted))
		}
	}
	e := &entry{key: k}
	b.entries[k] = e
	return e, evicted
}

// newFlight makes e's next fetch. b.mu is held.
func (b *Broker) newFlight(e *entry, background bool) *flight {
	ctx, cancel := context.WithCancel(b.ctx)
	f := &flight{ctx: ctx, cancel: cancel, background: background, limited: make(chan struct{}), done: make(chan struct{})}
	e.flight = f
	return f
}

// start starts a fetch for e on its own goroutine; a background one goes
// on with retries when it fails. b.mu is held.
func (b *Broker) start(e *entry, background bool) *flight {
	f := b.newFlight(e, background)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.run(e, f)
		if background {
			b.retry(e, f)
		}
	}()
	return f
}

// run makes f's fetch and records its outcome in e.
func (b *Broker) run(e *entry, f *flight) {
	defer f.cancel()
	k := e.key
	var creds sigv4.Credentials
	var fetched *Fetched
	err := b.limit.wait(f.ctx, b.clock, func(d time.Duration) { b.emit(Throttled{Key: k, Wait: d}) })
	close(f.limited)
	if err == nil {
		start := b.clock.Now()
		creds, err = b.fetch(f.ctx, k)
		end := b.clock.Now()
		if err == nil {
			err = b.check(k, creds, end)
		}
		fetched = &Fetched{Key: k, Took: end.Sub(start), Err: err, Background: f.background}
	}

	b.mu.Lock()
	if e.flight == f {
		e.flight = nil
	}
	now := b.clock.Now()
	switch {
	case err == nil:
		e.creds, e.fetchedAt = creds, now
		e.refreshAt = now.Add(creds.Expiration.Add(-b.margin).Sub(now) / 2)
		e.lastErr, e.lastErrAt, e.retryAt, e.backoff = nil, time.Time{}, time.Time{}, 0
		f.creds = creds
	case f.ctx.Err() != nil:
		// Abandoned by its waiters, or the broker is closing: not a
		// failure of Roles Anywhere, so no backoff.
		if b.ctx.Err() != nil {
			err = ErrClosed
		}
		f.err = fmt.Errorf("fetching credentials for %s: %w", k, err)
	default:
		e.backoff = min(max(2*e.backoff, b.backoffMin), b.backoffMax)
		e.lastErr, e.lastErrAt, e.retryAt = err, now, now.Add(e.backoff)
		f.err = b.failure(e, now)
	}
	b.mu.Unlock()
	if fetched != nil {
		b.emit(*fetched)
	}
	close(f.done)
}

// retry goes on with a failed background refresh f: with capped
// backoff, for as long as the cached credentials are usable and no
// foreground fetch took over.
func (b *Broker) retry(e *entry, f *flight) {
	for f.err != nil {
		b.mu.Lock()
		now := b.clock.Now()
		if !b.keepRetrying(e, now) {
			return // keepRetrying unlocked
		}
		wait, lastErr := e.retryAt.Sub(now), e.lastErr
		timer := b.clock.NewTimer(wait)
		b.mu.Unlock()
		b.log.Warn("refreshing credentials failed; serving the cached ones meanwhile",
			"role", e.key.RoleARN, "session", e.key.SessionName, "expires", e.creds.Expiration.UTC().Format(time.RFC3339),
			"retry_in", wait, "err", lastErr)
		b.emit(Retrying{Key: e.key, Err: lastErr, In: wait})
		select {
		case <-b.ctx.Done():
			timer.Stop()
			b.mu.Lock()
			e.refreshing = false
			b.mu.Unlock()
			return
		case <-timer.C():
		}
		b.mu.Lock()
		if !b.keepRetrying(e, b.clock.Now()) {
			return
		}
		f = b.newFlight(e, true)
		b.mu.Unlock()
		b.run(e, f)
	}
	b.mu.Lock()
	e.refreshing = false
	b.mu.Unlock()
}

// keepRetrying tells whether a background refresh should go on. b.mu is
// held; when the answer is no, keepRetrying ends the refresh and unlocks.
func (b *Broker) keepRetrying(e *entry, now time.Time) bool {
	stop := b.closed || e.flight != nil || b.entries[e.key] != e
	ranOut := !stop && !b.usable(e, now)
	if !stop && !ranOut {
		return true
	}
	e.refreshing = false
	exp, lastErr := e.creds.Expiration, e.lastErr
	b.mu.Unlock()
	if ranOut {
		b.log.Warn("cached credentials are within the margin of expiry and no new session could be had; Get fails until one can",
			"role", e.key.RoleARN, "session", e.key.SessionName, "expires", exp.UTC().Format(time.RFC3339), "err", lastErr)
		b.emit(RefreshStopped{Key: e.key, Expiration: exp, Err: lastErr})
	}
	return false
}

// answerError is a CreateSession answer the broker will not hand out.
type answerError struct{ msg string }

func (e *answerError) Error() string { return e.msg }

// check refuses empty fields and sessions with no more than the margin
// left.
func (b *Broker) check(k Key, c sigv4.Credentials, now time.Time) error {
	var missing []string
	if c.AccessKeyID == "" {
		missing = append(missing, "AccessKeyId")
	}
	if c.SecretAccessKey == "" {
		missing = append(missing, "SecretAccessKey")
	}
	if c.SessionToken == "" {
		missing = append(missing, "SessionToken")
	}
	if c.Expiration.IsZero() {
		missing = append(missing, "Expiration")
	}
	if len(missing) > 0 {
		return &answerError{fmt.Sprintf("the answer for %s has no %s", k.RoleARN, strings.Join(missing, ", "))}
	}
	if left := c.Expiration.Sub(now); left <= b.margin {
		return &answerError{fmt.Sprintf("the session for %s is too short: it has %s left, and credentials are handed out only with more than %s left; "+
			"the role's maximum session duration or the profile's durationSeconds may be lower than the %s asked for",
			k.RoleARN, left.Round(time.Second), b.margin, k.Duration)}
	}
	return nil
}

// failure is the *Error for e's last failure. b.mu is held.
func (b *Broker) failure(e *entry, now time.Time) *Error {
	var s strings.Builder
	exp := e.creds.Expiration
	switch {
	case exp.IsZero():
		fmt.Fprintf(&s, "no credentials for %s: ", e.key)
	case now.Before(exp):
		fmt.Fprintf(&s, "credentials for %s expire in %s and ", e.key, exp.Sub(now).Round(time.Second))
	default:
		fmt.Fprintf(&s, "credentials for %s expired %s ago and ", e.key, now.Sub(exp).Round(time.Second))
	}
	var ae *rolesanywhere.APIError
	var te *rolesanywhere.TransportError
	var be *answerError
	switch {
	case errors.As(e.lastErr, &ae):
		s.WriteString("Roles Anywhere refused a new session")
	case errors.As(e.lastErr, &te):
		s.WriteString("Roles Anywhere could not be reached")
	case errors.As(e.lastErr, &be):
		s.WriteString("Roles Anywhere's new session was unusable")
	case errors.Is(e.lastErr, context.DeadlineExceeded):
		s.WriteString("getting a new session timed out")
	default:
		s.WriteString("getting a new session failed")
	}
	if ago := now.Sub(e.lastErrAt); ago >= time.Second {
		fmt.Fprintf(&s, " %s ago", ago.Round(time.Second))
	}
	if next := e.retryAt.Sub(now); next > 0 {
		fmt.Fprintf(&s, " (next attempt in %s)", next.Round(time.Second))
	}
	s.WriteString(": ")
	s.WriteString(e.lastErr.Error())
	return &Error{Key: e.key, Expiration: exp, At: e.lastErrAt, NextAttempt: e.retryAt, Err: e.lastErr, msg: s.String()}
}

// Status lists the cached keys, sorted.
func (b *Broker) Status() []EntryStatus {
	b.mu.RLock()
	out := make([]EntryStatus, 0, len(b.entries))
	for _, e := range b.entries {
		st := EntryStatus{Key: e.key, Expiration: e.creds.Expiration, Refreshed: e.fetchedAt, RefreshAt: e.refreshAt, Fetching: e.flight != nil}
		if e.lastErr != nil {
			st.LastError, st.LastErrorAt, st.NextAttempt = e.lastErr.Error(), e.lastErrAt, e.retryAt
		}
		out = append(out, st)
	}
	b.mu.RUnlock()
	slices.SortFunc(out, func(x, y EntryStatus) int {
		return cmpKey(x.Key, y.Key)
	})
	return out
}

func cmpKey(x, y Key) int {
	if c := strings.Compare(x.RoleARN, y.RoleARN); c != 0 {
		return c
	}
	if c := strings.Compare(x.ProfileARN, y.ProfileARN); c != 0 {
		return c
	}
	if c := strings.Compare(x.SessionName, y.SessionName); c != 0 {
		return c
	}
	return int(min(max(x.Duration-y.Duration, -1), 1))
}

// Close cancels fetches and retries under way, waits for them to end, and
// makes Get return ErrClosed.
func (b *Broker) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}
