package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/store"
)

// commitEvents opens a Bolt store whose commit loop reports, on
// channels, each write it takes (the group's size so far) and each commit
// (its size and whether it waited for announced writes). A commit waits
// for announced writes an hour at most, so in these tests only the
// announcements end the wait, never a timer.
type commitEvents struct {
	db        *store.Bolt
	received  chan int
	holding   chan int
	committed chan commitEvent
}

type commitEvent struct {
	n    int
	held bool
}

func openCommitEvents(t *testing.T, fail func() error) *commitEvents {
	t.Helper()
	e := &commitEvents{db: openBolt(t, dbPath(t), store.BoltOptions{}),
		received: make(chan int, 100), holding: make(chan int, 100),
		committed: make(chan commitEvent, 100)}
	store.SetCommitHooks(e.db, store.CommitHooks{
		Hold:      time.Hour,
		Received:  func(n int) { e.received <- n },
		Holding:   func(n int) { e.holding <- n },
		Committed: func(n int, held bool) { e.committed <- commitEvent{n, held} },
		Fail:      fail,
	})
	return e
}

func (e *commitEvents) waitReceived(t *testing.T, want int) {
	t.Helper()
	if got := <-e.received; got != want {
		t.Fatalf("the commit loop took write number %d, want %d", got, want)
	}
}

// waitHolding waits until the commit loop starts to wait for announced
// writes with a group of want. It may start again with a smaller group
// before that (a wake-up that finds writes still announced), so smaller
// groups are passed over.
func (e *commitEvents) waitHolding(t *testing.T, want int) {
	t.Helper()
	for {
		got := <-e.holding
		if got == want {
			return
		}
		if got > want {
			t.Fatalf("the commit loop waits with a group of %d, want %d", got, want)
		}
	}
}

// spend uses token id in the background, returning the outcome on a
// channel.
func (e *commitEvents) spend(id string) <-chan error {
	out := make(chan error, 1)
	go func() { out <- e.db.UseToken(id, time.Now().Add(time.Hour)) }()
	return out
}

// TestCommitLoneWriteDoesNotWait: with no write announced, a write
// commits at once, in a group of its own, without waiting (the commit's
// hold is an hour, so a wait would hang the test).
func TestCommitLoneWriteDoesNotWait(t *testing.T) {
	e := openCommitEvents(t, nil)
	for i := range 3 {
		if err := e.db.UseToken("lone-"+string(rune('a'+i)), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if c := <-e.committed; c != (commitEvent{1, false}) {
			t.Fatalf("commit %d: %+v, want a group of 1 that did not wait", i, c)
		}
	}
	// An announcement that ended (its write failed before the store, or
	// was made) holds nothing either.
	an := e.db.Announce()
	an.Done()
	an.Done() // twice is harmless
	if err := e.db.UseToken("after-done", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c := <-e.committed; c != (commitEvent{1, false}) {
		t.Fatalf("after an ended announcement: %+v, want a group of 1 that did not wait", c)
	}
}

// TestCommitWaitsForAnnouncedWrites: a write that arrives while another
// is announced waits for it, and both share one commit; the commit
// happens when the last announcement ends.
func TestCommitWaitsForAnnouncedWrites(t *testing.T) {
	e := openCommitEvents(t, nil)
	first, second := e.db.Announce(), e.db.Announce()
	defer second.Done() // on failure, lets the writers end before the store closes
	first.Done()
	a := e.spend("a")
	e.waitReceived(t, 1)
	// "a" is held: second is still announced. Its write arrives...
	e.waitHolding(t, 1)
	b := e.spend("b")
	e.waitReceived(t, 2)
	// ...and is held with it (waiting for the loop to hold again keeps
	// second.Done from racing the loop's look at the announcements)...
	e.waitHolding(t, 2)
	select {
	case c := <-e.committed:
		t.Fatalf("committed %+v while a write was announced", c)
	default:
	}
	// ...and ending its announcement releases the group.
	second.Done()
	if c := <-e.committed; c != (commitEvent{2, true}) {
		t.Fatalf("commit %+v, want one group of 2 that waited", c)
	}
	for _, ch := range []<-chan error{a, b} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if n, err := store.TokenCount(e.db); err != nil || n != 2 {
		t.Fatalf("TokenCount = %d, %v; want 2", n, err)
	}
}

// TestCommitGroupReplay: two uses of one token id in one commit give
// exactly one success.
func TestCommitGroupReplay(t *testing.T) {
	e := openCommitEvents(t, nil)
	hold := e.db.Announce()
	a := e.spend("same")
	e.waitReceived(t, 1)
	b := e.spend("same")
	e.waitReceived(t, 2)
	hold.Done()
	if c := <-e.committed; c.n != 2 {
		t.Fatalf("commit %+v, want one group of 2", c)
	}
	errA, errB := <-a, <-b
	if (errA == nil) == (errB == nil) {
		t.Fatalf("outcomes %v and %v; want exactly one success", errA, errB)
	}
	if err := errors.Join(errA, errB); !errors.Is(err, store.ErrTokenUsed) {
		t.Fatalf("the refused use returned %v, want ErrTokenUsed", err)
	}
}

// TestCommitFailureFailsEveryWrite: when a group's commit fails (as a
// failing fsync would), every write in it gets an error and none is
// recorded.
func TestCommitFailureFailsEveryWrite(t *testing.T) {
	errDisk := errors.New("injected commit failure")
	e := openCommitEvents(t, func() error { return errDisk })
	hold := e.db.Announce()
	a := e.spend("a")
	e.waitReceived(t, 1)
	b := e.spend("b")
	e.waitReceived(t, 2)
	hold.Done()
	if c := <-e.committed; c.n != 2 {
		t.Fatalf("commit %+v, want one group of 2", c)
	}
	for i, ch := range []<-chan error{a, b} {
		if err := <-ch; !errors.Is(err, errDisk) {
			t.Errorf("write %d returned %v, want the commit's error", i, err)
		}
	}
	if n, err := store.TokenCount(e.db); err != nil || n != 0 {
		t.Fatalf("TokenCount = %d, %v; want 0 after a failed commit", n, err)
	}
}

// TestAnnounceReadOnly: a read-only store's announcements do nothing.
func TestAnnounceReadOnly(t *testing.T) {
	path := dbPath(t)
	openBolt(t, path, store.BoltOptions{}).Close()
	ro := openBolt(t, path, store.BoltOptions{ReadOnly: true})
	ro.Announce().Done()
	var nilAnnouncement *store.Announcement
	nilAnnouncement.Done()
}
