package caapi

import (
	"time"

	"github.com/keyless-dev/keyless/internal/serve"
)

// Start serves the API over HTTPS on addr (port 0 picks one) with
// TLSConfig's server certificate, until the returned server is closed:
// how keyless ca serve and keyless dev run a CA. now is the clock of the
// server certificate (nil: the real one).
func Start(addr string, cfg Config, now func() time.Time) (*serve.Server, error) {
	return serve.Start(addr, New(cfg), serve.Options{TLS: TLSConfig(cfg.Authority, now), Logger: cfg.Logger, WriteTimeout: 30 * time.Second})
}
