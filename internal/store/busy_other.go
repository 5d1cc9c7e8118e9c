//go:build !unix

package store

// Busy cannot tell without flock; OpenBolt's timeout decides instead.
func Busy(string, BoltOptions) bool { return false }
