package renewal

import (
	"crypto/x509"
	"time"
)

// Event is something Run did. The CLI logs events; tests wait for them.
type Event interface{ event() }

// Scheduled: Run waits until At to renew the certificate with Serial.
type Scheduled struct {
	At       time.Time
	Serial   string
	NotAfter time.Time
}

// Asked: RenewNow interrupted the wait.
type Asked struct{}

// Renewing: a renewal attempt starts.
type Renewing struct {
	Serial      string
	Certificate string // the path
}

// Renewed: the new certificate is in place.
type Renewed struct {
	Leaf        *x509.Certificate
	Certificate string // the path
}

// Failed: the attempt failed; the current pair stays, and Run tries again
// in RetryIn.
type Failed struct {
	Err      error
	RetryIn  time.Duration
	NotAfter time.Time
}

// HookFailed: AfterRenew failed after a renewal.
type HookFailed struct{ Err error }

// Stopping: the context ended; Run returns.
type Stopping struct{}

func (Scheduled) event()  {}
func (Asked) event()      {}
func (Renewing) event()   {}
func (Renewed) event()    {}
func (Failed) event()     {}
func (HookFailed) event() {}
func (Stopping) event()   {}
