package ca_test

import (
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/store"
)

// listExpiring does what keyless ca list --expiring d does with the CA
// stopped, and returns how many certificates it listed.
func listExpiring(b *testing.B, st store.Store, d time.Duration) int {
	list, err := ca.List(st)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	n := 0
	for _, l := range list {
		if !l.Revoked && !now.After(l.NotAfter) && l.NotAfter.Sub(now) <= d {
			n++
		}
	}
	return n
}
