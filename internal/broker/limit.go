package broker

import (
	"context"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/clock"
)

// bucket is a token bucket kept as a theoretical arrival time (GCRA):
// each call takes one slot of 1/rate; burst of them may go at once. A
// caller reserves its slot first and then waits for it, so waiters go in
// order, each on one timer of the injected clock.
type bucket struct {
	interval time.Duration // 1/rate
	burst    time.Duration // burst × interval
	mu       sync.Mutex
	tat      time.Time // when the bucket is next empty of slots taken
}

func newBucket(rate float64, burst int) *bucket {
	interval := max(time.Duration(float64(time.Second)/rate), 1)
	return &bucket{interval: interval, burst: time.Duration(burst) * interval}
}

// reserve takes the next slot and says how long until it comes.
func (l *bucket) reserve(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	tat := l.tat
	if tat.Before(now) {
		tat = now
	}
	l.tat = tat.Add(l.interval)
	return max(l.tat.Sub(now)-l.burst, 0)
}

// unreserve gives a slot back when its caller stops waiting.
func (l *bucket) unreserve() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tat = l.tat.Add(-l.interval)
}

// wait waits for a slot on c, or until ctx ends; waiting (with the wait)
// is called first when there is a wait.
func (l *bucket) wait(ctx context.Context, c clock.Clock, waiting func(time.Duration)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := l.reserve(c.Now())
	if d <= 0 {
		return nil
	}
	t := c.NewTimer(d)
	defer t.Stop()
	waiting(d)
	select {
	case <-ctx.Done():
		l.unreserve()
		return ctx.Err()
	case <-t.C():
		return nil
	}
}
