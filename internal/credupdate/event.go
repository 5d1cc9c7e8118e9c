package credupdate

import (
	"time"

	"github.com/keyless-dev/keyless/internal/credfile"
)

// Event is something Run did. The CLI logs events; tests wait for them.
type Event interface{ event() }

// Wrote: new credentials are in the profile. (Once returns it too.)
type Wrote struct {
	Profile, File string
	// Fetched is when the fetch started; Expiration when the credentials
	// expire.
	Fetched, Expiration time.Time
	Change              credfile.Change
	// AssumedRoleARN is the session's ARN, when the answer said it.
	AssumedRoleARN string
}

// Scheduled: Run waits until At to refresh credentials that expire at
// Expiration; Retry says it is the wait after a failure.
type Scheduled struct {
	At, Expiration time.Time
	Retry          bool
}

// Asked: RefreshNow interrupted the wait.
type Asked struct{}

// Failed: a refresh failed; the file keeps the credentials that expire
// at Expiration (Expired: they already have), and Run tries again in
// RetryIn.
type Failed struct {
	Err        error
	RetryIn    time.Duration
	Expiration time.Time
	Expired    bool
}

// Stopping: the context ended; Run returns.
type Stopping struct{}

func (Wrote) event()     {}
func (Scheduled) event() {}
func (Asked) event()     {}
func (Failed) event()    {}
func (Stopping) event()  {}
