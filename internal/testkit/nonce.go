package testkit

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
)

// Nonce returns 8 random hex digits, for the names of what a test makes
// outside itself (containers, images, volumes) that must not collide with
// another run's.
func Nonce(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
