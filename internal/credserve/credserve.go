// Package credserve is keyless serve: one Roles Anywhere session's
// credentials, served to the processes of this host (or of containers on
// its bridges) over IMDSv2, as AWS's aws_signing_helper serve does, with
// what its users asked for: a bind address other than loopback (with a
// hop limit of 1 by default there), the agent's broker in front of
// CreateSession (one call however many requests, refreshed ahead, under
// a rate limit), and the last good credentials through an outage instead
// of empty ones.
//
// It is a use case: it wires awscreds (one CreateSession), broker (the
// cache) and the IMDSv2 transport of internal/imds. The CLI's keyless
// serve runs it.
package credserve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/awscreds"
	"github.com/keyless-dev/keyless/internal/broker"
	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/hostnet"
	"github.com/keyless-dev/keyless/internal/identity"
	"github.com/keyless-dev/keyless/internal/imds"
	"github.com/keyless-dev/keyless/internal/logline"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Defaults, as AWS's helper has them.
const (
	DefaultAddress = "127.0.0.1"
	DefaultPort    = 9911
)

// Options shape a server.
type Options struct {
	// Request is the session, as credential-process's flags say it.
	// Its NoCache and MaxAttempts are set by New: the broker is the
	// cache, and it retries.
	Request awscreds.Request
	// Address is the IP address to listen on (default 127.0.0.1; not a
	// name); Port the port (0 picks one).
	Address string
	Port    int
	// AllowFrom are source prefixes answered off loopback besides this
	// host's own addresses and its container bridges' subnets (the
	// default, because every host on the link reaches any address of
	// this host, and IMDS has no per-caller secret). Ignored on
	// loopback, which only this host reaches.
	AllowFrom []netip.Prefix
	// HostSources says which sources are this host or its containers;
	// nil means hostnet's bridges (tests replace it).
	HostSources func(netip.Addr) bool
	// HopLimit is the IP TTL of the answers, 1 to 255; 0 means the
	// default: 64 on loopback, 1 on any other address (unspecified
	// ones included), so that no answer crosses a router.
	HopLimit int
	// Fetcher makes the CreateSession calls (its Clock is replaced by
	// Clock).
	Fetcher awscreds.Fetcher
	Clock   clock.Clock  // nil: the real one
	Logger  *slog.Logger // nil: discard
	// Rate bounds CreateSession calls a second (default broker's).
	Rate float64
	// Events receives what the server does; nil ignores them. It must
	// not block.
	Events func(Event)
}

// Event is something the server did: Listening, Ready, Broker.
type Event interface{ credserveEvent() }

// Listening: the listener is open at URL (the value for
// AWS_EC2_METADATA_SERVICE_ENDPOINT) with HopLimit.
type Listening struct {
	URL      string
	HopLimit int
}

// Ready: the first credentials are in hand and the server answers.
type Ready struct{ Expiration time.Time }

// Broker is an event of the credential cache.
type Broker struct{ Event broker.Event }

func (Listening) credserveEvent() {}
func (Ready) credserveEvent()     {}
func (Broker) credserveEvent()    {}

// OptionError is an option the server cannot use; Field names it as the
// CLI's flag does ("address", "hop-limit", "port").
type OptionError struct {
	Field string
	Err   error
}

func (e *OptionError) Error() string { return e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// Server is a configured server.
type Server struct {
	o        Options
	clock    clock.Clock
	log      *slog.Logger
	addr     netip.Addr
	hopLimit int
	role     string
	key      broker.Key
	broker   *broker.Broker
	password identity.PasswordFunc

	mu          sync.Mutex
	lastKey     string    // AccessKeyID of the last fetch
	lastFetched time.Time // and when it was made
}

// Margin is what credentials served for a session of d keep at least:
// 15 minutes (when botocore refreshes), or a third of d for shorter
// sessions, so that the helper's 15-minute sessions still refresh ahead.
func Margin(d time.Duration) time.Duration { return min(broker.DefaultMargin, d/3) }

// New checks the options, refusing what the server cannot use before
// anything is read or sent: the address, port and hop limit, and the
// request (ARNs, region, duration, endpoint) as awscreds checks it.
func New(o Options) (*Server, error) {
	s := &Server{o: o, clock: clock.Or(o.Clock), log: logline.Or(o.Logger)}
	if o.Address == "" {
		o.Address = DefaultAddress
	}
	a, err := netip.ParseAddr(o.Address)
	if err != nil || a.Zone() != "" {
		hint := ""
		if _, _, perr := net.SplitHostPort(o.Address); perr == nil {
			hint = "; give the port with --port"
		}
		return nil, &OptionError{Field: "address", Err: fmt.Errorf("--address %q: want an IP address such as 127.0.0.1, 172.17.0.1 or ::1, not a name%s", o.Address, hint)}
	}
	s.addr = a.Unmap()
	if o.Port < 0 || o.Port > 65535 {
		return nil, &OptionError{Field: "port", Err: fmt.Errorf("--port %d: must be 0 to 65535", o.Port)}
	}
	switch {
	case o.HopLimit == 0 && s.addr.IsLoopback():
		s.hopLimit = imds.DefaultHopLimit
	case o.HopLimit == 0:
		s.hopLimit = imds.DefaultRemoteHopLimit
	case o.HopLimit < 1 || o.HopLimit > imds.MaxHopLimit:
		return nil, &OptionError{Field: "hop-limit", Err: fmt.Errorf("--hop-limit %d: must be 1 to %d", o.HopLimit, imds.MaxHopLimit)}
	default:
		s.hopLimit = o.HopLimit
	}
	o.Fetcher.Clock = s.clock
	r := o.Request
	r.NoCache, r.MaxAttempts = true, 1
	if _, err := o.Fetcher.Check(r); err != nil {
		return nil, err
	}
	role, err := rolesanywhere.ParseRoleARN(r.RoleARN)
	if err != nil {
		return nil, err
	}
	s.role = role.Resource[strings.LastIndex(role.Resource, "/")+1:]
	// The key is read at every fetch, so a renewed certificate is used
	// without a restart; its password is asked once and kept, because a
	// prompt or standard input can be read only once.
	if r.Password != nil {
		s.password = rememberPassword(r.Password)
		r.Password = s.password
	}
	s.o = o
	s.o.Request = r
	d := time.Duration(r.DurationSeconds) * time.Second
	s.key = broker.Key{RoleARN: r.RoleARN, ProfileARN: r.ProfileARN, SessionName: r.SessionName, Duration: d}
	s.broker, err = broker.New(broker.Config{Fetch: s.fetch, Clock: s.clock, Logger: s.log, Margin: Margin(d), Rate: o.Rate, MaxEntries: 1,
		Events: func(e broker.Event) { s.emit(Broker{Event: e}) }})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func rememberPassword(ask identity.PasswordFunc) identity.PasswordFunc {
	var (
		mu sync.Mutex
		pw []byte
	)
	return func(path string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if pw != nil {
			return pw, nil
		}
		p, err := ask(path)
		if err != nil {
			return nil, err
		}
		pw = p
		return pw, nil
	}
}

// HopLimit is the hop limit the server sets: the option's, or the
// default for its address.
func (s *Server) HopLimit() int { return s.hopLimit }

// RoleName is the name the server lists.
func (s *Server) RoleName() string { return s.role }

func (s *Server) emit(e Event) {
	if s.o.Events != nil {
		s.o.Events(e)
	}
}

// fetch is one CreateSession, for the broker.
func (s *Server) fetch(ctx context.Context, _ broker.Key) (sigv4.Credentials, error) {
	res, err := s.o.Fetcher.Fetch(ctx, s.o.Request)
	if err != nil {
		return sigv4.Credentials{}, err
	}
	s.mu.Lock()
	s.lastKey, s.lastFetched = res.Credentials.AccessKeyID, s.clock.Now()
	s.mu.Unlock()
	return res.Credentials, nil
}

// Credentials are the credentials to answer with now: the broker's, with
// more than the margin left (the last good ones through an outage), or
// its *broker.Error.
func (s *Server) Credentials(ctx context.Context) (imds.Credentials, error) {
	res, err := s.broker.Get(ctx, s.key)
	if err != nil {
		return imds.Credentials{}, err
	}
	c := res.Credentials
	out := imds.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken, Expiration: c.Expiration}
	s.mu.Lock()
	if s.lastKey == c.AccessKeyID {
		out.LastUpdated = s.lastFetched
	}
	s.mu.Unlock()
	return out, nil
}

// Handler is the IMDSv2 handler over Credentials; off loopback it
// answers only the sources Allow accepts.
func (s *Server) Handler() (*imds.Handler, error) {
	return imds.New(imds.Config{RoleName: s.role, Source: s.Credentials, Clock: s.clock, Logger: s.log, Allow: s.Allow()})
}

// Allow says which callers are answered: nil (all) on loopback, else
// the host's own addresses, its container bridges' subnets and
// Options.AllowFrom.
func (s *Server) Allow() func(netip.Addr) bool {
	if s.addr.IsLoopback() {
		return nil
	}
	host := s.o.HostSources
	if host == nil {
		host = hostnet.NewBridges().Allow
	}
	from := s.o.AllowFrom
	return func(a netip.Addr) bool {
		a = a.Unmap()
		if host(a) {
			return true
		}
		for _, p := range from {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}

// StartError is a server that could not start: Listen says whether the
// listener failed (else the first credentials could not be had).
type StartError struct {
	Listen bool
	Err    error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Run listens, gets the first credentials (so that a wrong key, password
// or ARN fails at start, not at the first request), and serves until ctx
// ends; then it lets requests in flight finish and returns nil.
func (s *Server) Run(ctx context.Context) error {
	defer s.broker.Close()
	h, err := s.Handler()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(s.addr.String(), strconv.Itoa(s.o.Port))
	srv, err := imds.Start(addr, s.hopLimit, h, s.log)
	if err != nil {
		return &StartError{Listen: true, Err: fmt.Errorf("listening on %s: %w", addr, err)}
	}
	defer srv.Close()
	if !s.addr.IsLoopback() {
		if s.hopLimit > imds.DefaultRemoteHopLimit {
			s.log.Warn("serving off loopback with a hop limit above 1: hosts behind routers can get these credentials too",
				"address", addr, "hop_limit", s.hopLimit)
		} else {
			s.log.Info("serving off loopback: answering this host and its containers' bridges only, as IMDS has no per-caller authentication",
				"address", addr, "hop_limit", s.hopLimit, "allow_from", fmt.Sprint(s.o.AllowFrom))
		}
	}
	// Requests that come meanwhile wait for the same fetch.
	first, err := s.Credentials(ctx)
	if err != nil {
		return &StartError{Err: fmt.Errorf("getting the first credentials: %w", err)}
	}
	url := srv.URL() + "/"
	s.log.Info("serving IMDSv2", "url", url, "role", s.role, "hop_limit", s.hopLimit, "expires", first.Expiration.UTC().Format(time.RFC3339))
	s.emit(Listening{URL: url, HopLimit: s.hopLimit})
	s.emit(Ready{Expiration: first.Expiration})
	select {
	case <-ctx.Done():
		return nil
	case <-srv.Done():
		return fmt.Errorf("serving %s: %w", url, srv.Err())
	}
}
