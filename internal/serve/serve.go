// Package serve runs an HTTP server the way every keyless server runs:
// it listens, serves in the background with bounded read and idle times,
// and on Close lets requests in flight finish before it returns. The
// transports (internal/ca/caapi, internal/emulator) start their servers
// with it, so the use cases and the CLI never build one.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/keyless-dev/keyless/internal/logline"
)

// Options shape a server.
type Options struct {
	// TLS, when set, serves HTTPS with this configuration.
	TLS *tls.Config
	// Logger receives the server's own errors (bad handshakes, broken
	// connections) at ErrorLevel (the zero value is Info); nil discards
	// them.
	Logger     *slog.Logger
	ErrorLevel slog.Level
	// WriteTimeout bounds writing an answer; zero means no bound (the
	// emulator's), which a slow client can only hold for itself.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers together,
	// through the blank line that ends them: larger requests get 431
	// before any handler runs. Zero means net/http's default (1 MiB plus
	// its slack). net/http cannot bound below its slack of 4096 bytes, so
	// a value of 4096 or less allows 4097 bytes.
	MaxHeaderBytes int
	// ConnContext, when set, derives each connection's context (for
	// example to carry the peer's credentials on a unix socket).
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

// headerSlack is what net/http reads beyond MaxHeaderBytes before it
// answers 431.
const headerSlack = 4096

// Server is a running server.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	url  string
	done chan struct{}
	err  error // Serve's result, once done is closed
}

// Start listens on addr (port 0 picks a free port) and serves h until
// Close.
func Start(addr string, h http.Handler, o Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return Serve(ln, h, o), nil
}

// Serve serves h on ln until Close.
func Serve(ln net.Listener, h http.Handler, o Options) *Server {
	logger := logline.Or(o.Logger)
	scheme := "http"
	if o.TLS != nil {
		scheme = "https"
	}
	s := &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      o.WriteTimeout,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), o.ErrorLevel),
			TLSConfig:         o.TLS,
			ConnContext:       o.ConnContext,
		},
		ln:   ln,
		url:  scheme + "://" + ln.Addr().String(),
		done: make(chan struct{}),
	}
	if o.MaxHeaderBytes > 0 {
		// net/http allows MaxHeaderBytes plus its slack: take the
		// slack off, so the bound is the one asked for.
		s.srv.MaxHeaderBytes = max(o.MaxHeaderBytes-headerSlack, 1)
	}
	go func() {
		if o.TLS != nil {
			// ServeTLS, not a TLS listener: it offers HTTP/2 as well.
			s.err = s.srv.ServeTLS(ln, "", "")
		} else {
			s.err = s.srv.Serve(ln)
		}
		close(s.done)
	}()
	return s
}

// URL is scheme://host:port of the listener.
func (s *Server) URL() string { return s.url }

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Done is closed once the server has stopped, on its own or by Close.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is why the server stopped (http.ErrServerClosed after Close), once
// Done is closed.
func (s *Server) Err() error {
	<-s.done
	return s.err
}

// Close stops accepting, lets requests in flight finish for up to ten
// seconds, and returns once the server has stopped.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serveErr := s.Err(); !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("serving %s: %w", s.url, serveErr)
	}
	return err
}
