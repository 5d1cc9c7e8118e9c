package awscreds

import (
	"testing"
	"time"
)

// TestSettled: a bundle is known by its identity only when its change
// time is real and more than bundleSettle old.
func TestSettled(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name  string
		ctime time.Time
		want  bool
	}{
		{"old", now.Add(-time.Hour), true},
		{"just past the settle time", now.Add(-bundleSettle - time.Nanosecond), true},
		{"within the settle time", now.Add(-bundleSettle + time.Second), false},
		{"in the future", now.Add(time.Minute), false},
		{"no change time (zero)", time.Unix(0, 0), false},
	} {
		if got := (fileIdentity{ctime: tc.ctime}).settled(now); got != tc.want {
			t.Errorf("%s: settled %v, want %v", tc.name, got, tc.want)
		}
	}
}
