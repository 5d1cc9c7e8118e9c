package emulator

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/keyless-dev/keyless/internal/serve"
)

// ErrPlainHTTP means plain HTTP was asked for on an address other than
// loopback, where credentials would cross the network in clear.
var ErrPlainHTTP = errors.New("plain HTTP is served on loopback only")

// Start serves e on addr (HOST:PORT; port 0 picks one) until the returned
// server is closed: over HTTPS with tlsConfig, or, when it is nil, over
// plain HTTP, which only a loopback address may take (ErrPlainHTTP).
func Start(addr string, e *Emulator, tlsConfig *tls.Config, logger *slog.Logger) (*serve.Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%q: %w (want HOST:PORT such as 127.0.0.1:8443)", addr, err)
	}
	if tlsConfig == nil && !IsLoopback(host) {
		return nil, fmt.Errorf("%s: %w", addr, ErrPlainHTTP)
	}
	return serve.Start(addr, e, serve.Options{TLS: tlsConfig, Logger: logger, ErrorLevel: slog.LevelWarn})
}

// IsLoopback reports whether host (a name or an IP) is this machine's
// loopback.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
