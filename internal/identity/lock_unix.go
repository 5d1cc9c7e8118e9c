//go:build unix

package identity

import (
	"os"
	"syscall"
)

// lockPair takes an exclusive lock on a file beside the certificate, so
// that a pair replacement and a recovery (another keyless process
// renewing or revoking) never interleave.
func lockPair(certPath string) (func(), error) {
	f, err := os.OpenFile(certPath+lockSuffix, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
