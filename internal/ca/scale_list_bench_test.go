package ca_test

import (
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/caproto"
	"github.com/keyless-dev/keyless/internal/store"
)

// listExpiring does what keyless ca list --expiring d does with the CA
// stopped, and returns how many certificates it listed.
func listExpiring(b *testing.B, st store.Store, d time.Duration) int {
	now := time.Now()
	n := 0
	err := ca.List(st, caproto.ListFilter{NotAfterFrom: now, NotAfterTo: now.Add(d)}, func(l caproto.Certificate) error {
		if !l.Revoked && !now.After(l.NotAfter) && l.NotAfter.Sub(now) <= d {
			n++
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
