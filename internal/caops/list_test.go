package caops

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/caproto"
)

// TestListExpiring: --expiring asks the store or the CA for the notAfter
// range [now, now+D], and of what comes back (a CA that ignores the range
// sends everything) keeps the valid certificates within it, bounds
// included.
func TestListExpiring(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := 24 * time.Hour
	var kept []string
	f, each := ListOptions{Expiring: d}.lister(now, func(l Listed) error {
		kept = append(kept, l.Serial)
		return nil
	})
	if want := (caproto.ListFilter{NotAfterFrom: now, NotAfterTo: now.Add(d)}); f != want {
		t.Errorf("filter %+v, want %+v", f, want)
	}
	for _, c := range []caproto.Certificate{
		{Serial: "1", NotAfter: now.Add(-time.Nanosecond)},            // expired
		{Serial: "2", NotAfter: now},                                  // expires now: still valid
		{Serial: "3", NotAfter: now.Add(d)},                           // the bound
		{Serial: "4", NotAfter: now.Add(d + time.Nanosecond)},         // later
		{Serial: "5", NotAfter: now.Add(time.Hour), Revoked: true},    // revoked
		{Serial: "6", NotAfter: now.Add(time.Hour), RenewedFrom: "2"}, // valid
	} {
		if err := each(c); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"2", "3", "6"}, kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}

	kept = nil
	f, each = ListOptions{}.lister(now, func(l Listed) error {
		kept = append(kept, string(l.Status))
		return nil
	})
	if f.Bounded() {
		t.Errorf("no --expiring asked for a range: %+v", f)
	}
	each(caproto.Certificate{NotAfter: now.Add(-time.Second)})
	each(caproto.Certificate{NotAfter: now.Add(time.Second), Revoked: true})
	each(caproto.Certificate{NotAfter: now.Add(time.Second)})
	if diff := cmp.Diff([]string{"expired", "revoked", "valid"}, kept); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}
