package store

import (
	"fmt"
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
)

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
// A write that arrives while the loop is idle commits at once. Writes that
// arrive during a commit share the next one. After a commit the loop also
// waits a little (half the last commit's duration, at most maxLinger) for
// as many writes as that commit released plus those already queued: the
// writers it just answered are usually about to write again, and without
// the wait, writers in lockstep split into two cohorts that alternate,
// each commit carrying half of them. The wait ends as soon as that many
// writes are queued, so a lone writer never waits.
func (b *Bolt) commitLoop() {
	defer close(b.loopDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		expect int           // writes the next commit waits for
		linger time.Duration // how long it waits for them
	)
	for first := range b.writes {
		group := []writeReq{first}
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
			default:
				break drain
			}
		}
		if open && len(group) < expect {
			timer.Reset(linger)
		wait:
			for len(group) < expect {
				select {
				case r, ok := <-b.writes:
					if !ok {
						open = false
						break wait
					}
					group = append(group, r)
				case <-timer.C:
					break wait
				}
			}
			timer.Stop()
		}

		start := time.Now()
		b.commitGroup(group)
		linger = min(time.Since(start)/2, maxLinger)
		expect = min(maxGroup, len(group)+len(b.writes))
		if !open {
			return
		}
	}
}

// commitGroup runs the group's functions in one transaction. If that
// fails, it runs each in a transaction of its own, so that one failing
// write does not fail the others.
func (b *Bolt) commitGroup(group []writeReq) {
	err := b.db.Update(func(tx *bolt.Tx) error {
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
		r.done <- b.db.Update(func(tx *bolt.Tx) error { return safelyCall(r.fn, tx) })
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
