// Package testkit is the one kit of test helpers every keyless test uses,
// the interop modules included: a fake clock that drives schedulers
// without sleeping, a buffer safe to share with a running process, the
// keyless binary built once per test process, loopback ports, a bounded
// wait for state another process changes, and the rule for missing
// interop peers (skip, or fail when KEYLESS_INTEROP=require).
//
// Only tests may import it; the dependency guard (internal/deptest)
// refuses it anywhere else.
package testkit
