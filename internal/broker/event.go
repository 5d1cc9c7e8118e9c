package broker

import "time"

// Event is something the broker did: the agent counts them as metrics,
// tests wait for them. Config.Events receives them on the goroutine that
// did the thing, never with the broker's lock held.
type Event interface{ event() }

// Hit: Get answered from the cache (also when the answer is last-good
// credentials, which is a Stale event besides).
type Hit struct{ Key Key }

// Stale: Get answered with cached credentials whose refresh failed: the
// last good ones, served until they are within the margin of expiry.
type Stale struct {
	Key        Key
	Expiration time.Time
	Err        error // the last refresh's failure
}

// Joined: Get waits for a fetch of its key that another Get, or a
// background refresh, started (singleflight).
type Joined struct{ Key Key }

// Throttled: a fetch waits Wait for the global rate limit.
type Throttled struct {
	Key  Key
	Wait time.Duration
}

// Fetched: one call of Config.Fetch ended. Took is on the broker's clock;
// Err is the call's error, or why its answer was refused (empty fields,
// too little time left). Background tells a refresh ahead from a fetch a
// Get waits for.
type Fetched struct {
	Key        Key
	Took       time.Duration
	Err        error
	Background bool
}

// Retrying: a background refresh failed while the cached credentials
// were still good; the next attempt is in In (capped backoff), unless they
// are within the margin by then.
type Retrying struct {
	Key Key
	Err error
	In  time.Duration
}

// RefreshStopped: a failing background refresh gave up because the
// cached credentials are now within the margin of expiry: the last good
// credentials ran out. Gets return an *Error, and fetch themselves once
// the backoff after Err has passed.
type RefreshStopped struct {
	Key        Key
	Expiration time.Time
	Err        error
}

// Refused: Get returned Err instead of credentials.
type Refused struct {
	Key Key
	Err error
}

// Evicted: the cache was full and dropped Key's entry; Expired tells an
// entry with no usable credentials from the soonest-expiring one.
type Evicted struct {
	Key     Key
	Expired bool
}

func (Hit) event()            {}
func (Stale) event()          {}
func (Joined) event()         {}
func (Throttled) event()      {}
func (Fetched) event()        {}
func (Retrying) event()       {}
func (Refused) event()        {}
func (RefreshStopped) event() {}
func (Evicted) event()        {}
