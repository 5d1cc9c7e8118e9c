//go:build !unix

package identity

// lockPair is a no-op where flock does not exist; keyless's own pair
// writers then rely on the pending-certificate rule alone.
func lockPair(string) (func(), error) { return func() {}, nil }

// noFollow: no such flag here; readOwn's Lstat check stands alone.
const noFollow = 0
