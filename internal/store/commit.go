package store

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit. Every commit of the Bolt store ends in fsync, which costs
// milliseconds and does not get much dearer with more data, so concurrent
// writes share commits: a single goroutine takes all the writes queued and
// commits them in one transaction.
//
// This replaces bbolt's DB.Batch, which starts a batch with a timer: every
// write then waits for the timer (10ms by default), and signers that
// alternate between two writes split into cohorts that each fill half a
// batch. Measured with BenchmarkSign/clients=16 (-cpu 2, one VM disk,
// runs interleaved): this loop did 4,900-7,600 certificates a second,
// DB.Batch 580-660 with its default delay, 1,600-2,100 with 2ms and
// 1,800-3,600 with 1ms.
const (
	// maxGroup is the most writes one commit takes; it bounds the work a
	// failed commit redoes write by write.
	maxGroup = 1024

	// maxLinger bounds how long the loop waits for writers to come back
	// after a commit (see commitLoop), which is also at most half the last
	// commit's duration: on a slow disk waiting costs little next to the
	// commit it fills, and on a fast one it stays short.
	maxLinger = time.Millisecond

	// maxHold bounds how long a commit waits for announced writes (see
	// Announce), counted from when the loop took the group's first write.
	// Under load the CA's handlers are CPU-bound, so writes arrive one by
	// one, paced by the CPU: without the wait a commit took 1.7 writes at
	// 16 clients, and its fixed cost (about 130 µs of CPU: the pages it
	// rewrites, the write and fsync calls) was a sixth of the CPU per
	// certificate. Two milliseconds is small next to the latency of a
	// request under such load (p50 above 10 ms), and a lone request,
	// which has no announced write beside it, never waits.
	maxHold = 2 * time.Millisecond

	// maxBusyHold bounds the wait instead while at least as many writes
	// are announced as there are processors (GOMAXPROCS): their handlers
	// keep every processor busy meanwhile, so holding the waiting writes
	// longer costs no throughput, only latency that the queue for the
	// processors imposes anyway.
	maxBusyHold = 10 * time.Millisecond
)

// Announcer is implemented by stores whose concurrent writes share
// commits ([Bolt]). A caller that is about to do the work that ends in a
// write (the CA checking a token and signing a certificate) announces
// the write; while announced writes are on their way, a commit waits a
// little (at most a couple of milliseconds) for them rather than commit
// without them, so that more writes share each commit's fixed cost. A
// write that no other is announced beside commits at once.
type Announcer interface {
	// Announce announces one write. The caller must call the returned
	// Announcement's Done once it is about to make the write, or knows
	// it will not make it (an error); Done may be called more than once.
	Announce() *Announcement
}

// Announcement is a write on its way; see [Announcer].
type Announcement struct {
	p    *pacing
	done atomic.Bool
}

// Done ends the announcement. It is safe on a nil Announcement and
// after the first call does nothing.
func (a *Announcement) Done() {
	if a == nil || a.p == nil || !a.done.CompareAndSwap(false, true) {
		return
	}
	if a.p.pending.Add(-1) < a.p.procs {
		select {
		case a.p.wake <- struct{}{}:
		default:
		}
	}
}

var _ Announcer = (*Bolt)(nil)

// Announce implements [Announcer]. On a read-only store it returns an
// announcement that does nothing.
func (b *Bolt) Announce() *Announcement {
	if b.writes == nil {
		return &Announcement{}
	}
	b.pace.pending.Add(1)
	return &Announcement{p: &b.pace}
}

// Announced returns how many announced writes are not yet done: zero
// whenever no issuance is under way (a test checks that every path of
// the CA ends its announcement).
func (b *Bolt) Announced() int64 { return b.pace.pending.Load() }

// pacing is what the commit loop knows of the writes to come.
type pacing struct {
	pending  atomic.Int64  // announced writes not yet done
	procs    int64         // GOMAXPROCS when the store opened
	wake     chan struct{} // a token when pending fell below procs
	hold     time.Duration // maxHold; tests set it longer
	busyHold time.Duration // maxBusyHold

	// Test hooks, nil unless a test sets them before the first write:
	// received is called with the group's size each time the loop takes
	// a write; committed after each commit with the group's size and
	// whether it waited for announced writes; holding each time it
	// starts to wait for announced writes, with the group's size. update
	// stands in for db.Update.
	received  func(n int)
	holding   func(n int)
	committed func(n int, held bool)
	update    func(db *bolt.DB, fn func(*bolt.Tx) error) error
}

func (p *pacing) init() {
	p.wake = make(chan struct{}, 1)
	p.hold, p.busyHold = maxHold, maxBusyHold
	p.procs = int64(runtime.GOMAXPROCS(0))
}

// writeReq is a write waiting for a commit.
type writeReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// write commits fn, sharing the commit with concurrent writes. fn may run
// more than once, in transactions that are rolled back, before the one
// whose outcome write returns: it must set its results afresh on each run.
// The caller holds b.mu for reading, so b.writes is open.
func (b *Bolt) write(fn func(*bolt.Tx) error) error {
	if b.writes == nil {
		return fmt.Errorf("store %s is open read-only", b.path)
	}
	done := make(chan error, 1)
	b.writes <- writeReq{fn: fn, done: done}
	return <-done
}

// commitLoop commits the writes sent on b.writes until it is closed.
//
// A write that arrives while the loop is idle commits at once, unless
// writes are announced (see Announcer): then the commit waits until none
// is announced any more, or the group is full, or maxHold has passed
// since the loop took the group's first write. Writes that arrive during
// a commit share the next one. After a commit the loop also waits a
// little (half the last commit's duration, at most maxLinger) for as many
// writes as that commit released plus those already queued: the writers
// it just answered are usually about to write again, and without the
// wait, writers in lockstep split into two cohorts that alternate, each
// commit carrying half of them. That wait ends as soon as that many
// writes are queued, so a lone writer never waits.
func (b *Bolt) commitLoop() {
	defer close(b.loopDone)
	p := &b.pace
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		expect int           // writes the next commit waits for
		linger time.Duration // how long it waits for them
	)
	for first := range b.writes {
		start := time.Now()
		group := []writeReq{first}
		p.receivedHook(len(group))
		open := true
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-b.writes:
				if !ok {
					open = false
					break drain
				}
				group = append(group, r)
				p.receivedHook(len(group))
			default:
				break drain
			}
		}
		held := false
		lingerEnd, holdEnd, busyEnd := start.Add(linger), start.Add(p.hold), start.Add(p.busyHold)
		for open && len(group) < maxGroup {
			now := time.Now()
			var until time.Time
			switch pending := p.pending.Load(); {
			case pending >= p.procs && now.Before(busyEnd):
				until, held = busyEnd, true
			case pending > 0 && now.Before(holdEnd):
				until, held = holdEnd, true
			}
			if len(group) < expect && now.Before(lingerEnd) && lingerEnd.After(until) {
				until = lingerEnd
			}
			if until.IsZero() {
				break
			}
			if held && p.holding != nil {
				p.holding(len(group))
			}
			timer.Reset(until.Sub(now))
			select {
			case r, ok := <-b.writes:
				if !ok {
					open = false
				} else {
					group = append(group, r)
					p.receivedHook(len(group))
				}
			case <-p.wake:
			case <-timer.C:
			}
			timer.Stop()
		}

		began := time.Now()
		b.commitGroup(group)
		if p.committed != nil {
			p.committed(len(group), held)
		}
		linger = min(time.Since(began)/2, maxLinger)
		expect = min(maxGroup, len(group)+len(b.writes))
		if !open {
			return
		}
	}
}

func (p *pacing) receivedHook(n int) {
	if p.received != nil {
		p.received(n)
	}
}

func (b *Bolt) update(fn func(*bolt.Tx) error) error {
	if b.pace.update != nil {
		return b.pace.update(b.db, fn)
	}
	return b.db.Update(fn)
}

// commitGroup runs the group's functions in one transaction. If that
// fails, it runs each in a transaction of its own, so that one failing
// write does not fail the others.
func (b *Bolt) commitGroup(group []writeReq) {
	err := b.update(func(tx *bolt.Tx) error {
		for _, r := range group {
			if err := safelyCall(r.fn, tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		for _, r := range group {
			r.done <- err
		}
		return
	}
	for _, r := range group {
		r.done <- b.update(func(tx *bolt.Tx) error { return safelyCall(r.fn, tx) })
	}
}

// safelyCall runs fn, turning a panic into an error: a panic on the
// commit goroutine would leave every writer waiting forever.
func safelyCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write panicked: %v", p)
		}
	}()
	return fn(tx)
}
