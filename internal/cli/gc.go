package cli

import (
	"os"
	"runtime/debug"
)

// serveGCPercent is the garbage collector's target for `keyless ca
// serve` (Go's default is 100). A request allocates tens of kilobytes
// (token, CSR and certificate parsing, JSON, TLS records) that die with
// it, while what stays live is small (the configuration, the CA's
// certificates, the database's pages are mapped, not heap), so at 100
// the collector ran every few dozen certificates and took about a tenth
// of the CA's CPU per certificate (issue 16). At 400 the heap may grow to
// five times what is live, a few tens of megabytes, for a quarter of the
// collections.
const serveGCPercent = 400

// tuneServeGC sets serveGCPercent unless GOGC is in the environment,
// which then decides as it does for any Go program.
func tuneServeGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
}
