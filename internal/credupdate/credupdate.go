// Package credupdate keeps one profile of the AWS shared credentials file
// (~/.aws/credentials) fresh, as AWS's aws_signing_helper update does,
// for the tools that read only that file: it gets credentials through
// awscreds (IAM Roles Anywhere CreateSession), writes them into the
// profile with credfile (atomically, 0600, every other byte kept), and
// refreshes them when a third of their lifetime is left, with a capped
// backoff after a failure that never touches the credentials in the file.
//
// It is a use case: keyless update calls it. It takes a clock and a
// logger, reports each step as an Event, and its errors are awscreds',
// rolesanywhere's and credfile's typed errors.
package credupdate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/credfile"
	"github.com/keyless-dev/keyless/internal/logline"
)

// Defaults of Config.
const (
	// DefaultBackoffMin is the first wait after a failed refresh.
	DefaultBackoffMin = 30 * time.Second
	// DefaultBackoffMax caps the wait between failed refreshes: with
	// at least a third of an hour-long session left when refreshing
	// starts, five minutes leaves four more tries before it runs out.
	DefaultBackoffMax = 5 * time.Minute
)

// Fetcher gets credentials; *awscreds.Fetcher is the one keyless uses.
type Fetcher interface {
	Fetch(ctx context.Context, r awscreds.Request) (*awscreds.Result, error)
}

// Config configures an Updater.
type Config struct {
	// Fetcher and Request say how to get the credentials. The request's
	// cache is never used (NoCache is forced): a refresh exists to get
	// credentials with a new lifetime, which a cache hit would not give.
	Fetcher Fetcher
	Request awscreds.Request
	// Profile is the section of the file to keep fresh.
	Profile string
	// File is the credentials file (credfile.Path's answer).
	File string
	// BackoffMin and BackoffMax bound the wait after a failed refresh;
	// zero means the defaults.
	BackoffMin, BackoffMax time.Duration
	// Clock is the scheduler's clock; nil means the real one.
	Clock clock.Clock
	// Events receives what Run does, in order, on Run's goroutine; nil
	// ignores them.
	Events func(Event)
	// Logger receives the file lock's warnings; nil discards.
	Logger *slog.Logger
}

// Updater keeps one profile fresh.
type Updater struct {
	cfg    Config
	writer *credfile.Writer
	now    chan struct{}
}

// New checks cfg and returns an Updater.
func New(cfg Config) (*Updater, error) {
	if cfg.Fetcher == nil || cfg.File == "" {
		return nil, errors.New("credupdate: a fetcher and the credentials file are required")
	}
	if err := credfile.CheckProfile(cfg.Profile); err != nil {
		return nil, err
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		return nil, fmt.Errorf("credupdate: the longest backoff %s is shorter than the first %s", cfg.BackoffMax, cfg.BackoffMin)
	}
	cfg.Request.NoCache = true
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Events == nil {
		cfg.Events = func(Event) {}
	}
	cfg.Logger = logline.Or(cfg.Logger)
	return &Updater{cfg: cfg, writer: &credfile.Writer{Path: cfg.File, Logger: cfg.Logger}, now: make(chan struct{}, 1)}, nil
}

// RefreshAt is when credentials fetched at fetched and expiring at
// expiration are refreshed: when a third of their lifetime is left (20
// minutes of an hour). AWS's helper waits until 5 minutes are left; but a
// tool reads the file once, when it starts, and keeps what it read, so
// the file should always hold credentials with a useful life left: a
// Terraform run started just before a refresh still gets a third of the
// lifetime, and a failed refresh leaves that third for the retries.
func RefreshAt(fetched, expiration time.Time) time.Time {
	return expiration.Add(-expiration.Sub(fetched) / 3)
}

// Once fetches credentials and writes them into the profile. On error
// the file is as it was.
func (u *Updater) Once(ctx context.Context) (Wrote, error) {
	fetched := u.cfg.Clock.Now()
	res, err := u.cfg.Fetcher.Fetch(ctx, u.cfg.Request)
	if err != nil {
		return Wrote{}, err
	}
	c := res.Credentials
	ch, err := u.writer.Write(u.cfg.Profile, credfile.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken})
	if err != nil {
		return Wrote{}, err
	}
	return Wrote{Profile: u.cfg.Profile, File: u.cfg.File, Expiration: c.Expiration, Fetched: fetched, Change: ch, AssumedRoleARN: res.AssumedRoleARN}, nil
}

// RefreshNow makes a running Run refresh at once, whatever its schedule
// or backoff. It never blocks; asking twice before Run notices is asking
// once.
func (u *Updater) RefreshNow() {
	select {
	case u.now <- struct{}{}:
	default:
	}
}

// Run writes the profile, then keeps it fresh until ctx ends: it
// refreshes at RefreshAt, or at once on RefreshNow, and after a failure
// again with a wait that doubles from BackoffMin to BackoffMax, leaving
// the credentials in the file as they are (even once they have expired:
// an expired token tells a tool more than a missing profile). The first
// write must succeed: its error is returned, as a wrong flag or an
// unreachable endpoint should stop a service at start. Run returns nil
// when ctx ends, even during the first write.
func (u *Updater) Run(ctx context.Context) error {
	last, err := u.Once(ctx)
	if err != nil {
		if ctx.Err() != nil {
			u.cfg.Events(Stopping{})
			return nil
		}
		return err
	}
	u.cfg.Events(last)
	backoff := time.Duration(0)
	for {
		now := u.cfg.Clock.Now()
		at := RefreshAt(last.Fetched, last.Expiration)
		if backoff > 0 {
			at = now.Add(backoff)
		} else if at.Sub(now) < u.cfg.BackoffMin {
			// Credentials that come with (almost) no life left, as
			// with a skewed clock, must not make a busy loop.
			at = now.Add(u.cfg.BackoffMin)
		}
		timer := u.cfg.Clock.NewTimer(at.Sub(now))
		u.cfg.Events(Scheduled{At: at, Expiration: last.Expiration, Retry: backoff > 0})
		select {
		case <-ctx.Done():
			timer.Stop()
			u.cfg.Events(Stopping{})
			return nil
		case <-u.now:
			timer.Stop()
			u.cfg.Events(Asked{})
			backoff = 0
		case <-timer.C():
		}
		w, err := u.Once(ctx)
		if err != nil {
			if ctx.Err() != nil {
				u.cfg.Events(Stopping{})
				return nil
			}
			backoff = min(max(backoff*2, u.cfg.BackoffMin), u.cfg.BackoffMax)
			u.cfg.Events(Failed{Err: err, RetryIn: backoff, Expiration: last.Expiration, Expired: !u.cfg.Clock.Now().Before(last.Expiration)})
			continue
		}
		backoff, last = 0, w
		u.cfg.Events(w)
	}
}
