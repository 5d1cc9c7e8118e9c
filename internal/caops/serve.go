package caops

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/ca"
	"github.com/keyless-dev/keyless/internal/ca/caapi"
	"github.com/keyless-dev/keyless/internal/serve"
	"github.com/keyless-dev/keyless/internal/store"
)

// ServeOptions shape a running CA.
type ServeOptions struct {
	// Password decrypts the intermediate key.
	Password []byte
	// Address overrides the configuration's ("127.0.0.1:0" picks a port).
	Address string
	// Version is what GET /version answers.
	Version string
	Logger  *slog.Logger
	// Now is the CA's clock; nil means the real one.
	Now func() time.Time
}

// Running is a CA serving its API.
type Running struct {
	Authority *ca.Authority
	Server    *serve.Server
	store     store.Store
	dir       *Dir
	close     func() error
}

// Close stops the server, letting requests in flight finish, and closes
// the store. Closing twice is closing once.
func (r *Running) Close() error { return r.close() }

// Start opens the CA and serves its API over HTTPS (TLS 1.2 or later,
// with a server certificate from the intermediate renewed in process). It
// refuses to start when the intermediate key, the root key or the
// configuration (which holds the encrypted provisioner key) can be read
// by group or others (*secretfile.ExposedError), and when another process holds the
// store (store.ErrLocked).
func (d *Dir) Start(o ServeOptions) (*Running, error) {
	if err := CheckPrivate("the CA configuration", filepath.Join(d.Path, ca.ConfigFile)); err != nil {
		return nil, err
	}
	if d.Config.RootKey != "" {
		if err := CheckPrivate("the root key", d.Config.Path(d.Config.RootKey)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	a, st, err := d.Authority(o.Password, ca.OpenOptions{Logger: o.Logger, Now: o.Now})
	if err != nil {
		return nil, err
	}
	addr := o.Address
	if addr == "" {
		addr = d.Config.Address
	}
	srv, err := caapi.Start(addr, caapi.Config{Authority: a, Version: o.Version, Logger: o.Logger}, o.Now)
	if err != nil {
		st.Close()
		return nil, &ListenError{Address: addr, Err: err}
	}
	r := &Running{Authority: a, Server: srv, store: st, dir: d}
	r.close = sync.OnceValue(func() error {
		err := r.Server.Close()
		if cerr := r.store.Close(); err == nil {
			err = cerr
		}
		return err
	})
	return r, nil
}

// ListenError is an address the CA could not listen on.
type ListenError struct {
	Address string
	Err     error
}

func (e *ListenError) Error() string { return "listening on " + e.Address + ": " + e.Err.Error() }
func (e *ListenError) Unwrap() error { return e.Err }

// Reload rereads the configuration (provisioners and policies; keys and
// certificates need a restart) from the directory the CA was started
// from, with every check Start made: a configuration another user could
// have changed is refused like one that does not load, and either way
// the running one stays. It returns how many provisioners it has.
func (r *Running) Reload() (int, error) {
	d, err := Open(r.dir.Path)
	if err != nil {
		return 0, err
	}
	if err := CheckPrivate("the CA configuration", filepath.Join(d.Path, ca.ConfigFile)); err != nil {
		return 0, err
	}
	r.Authority.Reload(d.Config)
	return len(d.Config.Provisioners), nil
}

// Serve runs r until ctx ends, then closes it, letting requests in
// flight finish.
func (r *Running) Serve(ctx context.Context) error {
	select {
	case <-r.Server.Done():
		err := r.Server.Err()
		r.Close()
		return err
	case <-ctx.Done():
		return r.Close()
	}
}
