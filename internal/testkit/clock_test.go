package testkit

import (
	"testing"
	"time"
)

func TestClockFiresDueTimersInOrder(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := NewClock(start)
	late := c.NewTimer(2 * time.Hour)
	early := c.NewTimer(time.Hour)
	stopped := c.NewTimer(30 * time.Minute)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop must report true once, then false")
	}
	if n := c.Pending(); n != 2 {
		t.Fatalf("%d pending timers, want 2", n)
	}
	if next, ok := c.Next(); !ok || !next.Equal(start.Add(time.Hour)) {
		t.Fatalf("Next = %v %v", next, ok)
	}
	c.Advance(59 * time.Minute)
	select {
	case <-early.C():
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Minute)
	if got := <-early.C(); !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("fired with %v", got)
	}
	select {
	case <-late.C():
		t.Fatal("the later timer fired too")
	default:
	}
	c.Set(start.Add(3 * time.Hour))
	<-late.C()
	if c.Pending() != 0 || late.Stop() {
		t.Fatal("a fired timer is still pending")
	}
	if now := c.NewTimer(0); len(now.C()) != 1 {
		t.Fatal("a zero timer must fire at once")
	}
}

func TestWaitForTimers(t *testing.T) {
	c := NewClock(time.Unix(0, 0))
	go func() { c.NewTimer(time.Second) }()
	c.WaitForTimers(t, 1)
}
