package caapi

import (
	"log/slog"
	"net"
	"time"

	"github.com/keyless-dev/keyless/internal/serve"
)

// Start serves the API over HTTPS on addr (port 0 picks one) until the
// returned server is closed: how keyless ca serve and keyless dev run a
// CA. now is the clock of the server certificate (nil: the real one).
func Start(addr string, cfg Config, now func() time.Time) (*serve.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return Serve(ln, cfg, now), nil
}

// Serve is Start on a listener the caller made: HTTPS (HTTP/2 offered)
// with TLSConfig's server certificate.
func Serve(ln net.Listener, cfg Config, now func() time.Time) *serve.Server {
	return serve.Serve(ln, New(cfg), serve.Options{TLS: TLSConfig(cfg.Authority, now), Logger: cfg.Logger,
		ErrorLevel: slog.LevelDebug, WriteTimeout: 30 * time.Second})
}
