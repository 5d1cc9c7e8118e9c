package agentapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/keyless-dev/keyless/internal/serve"
)

type peerKey struct{}

// PeerFrom returns the unix-socket caller of a request served by
// StartUnix, or nil.
func PeerFrom(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerKey{}).(*Peer)
	return p
}

// StartUnix serves h on a unix socket at path with mode (permission bits
// only) and group (gid; -1 keeps the agent's). The socket is made in a
// private directory next to path, given its mode and group, and only
// then renamed into place (never over anything: on Linux the rename
// itself refuses to replace), so it is never reachable with looser
// permissions. An existing socket at path is replaced only when it is
// ours and nothing answers on it; anything else there (a file, a link, a
// directory, another user's socket, a live agent) is an error. Each
// connection's peer credentials (SO_PEERCRED, Linux) go into its
// requests' context (PeerFrom). The server's Addr is path; Close removes
// the socket.
func StartUnix(path string, mode os.FileMode, gid int, h http.Handler, logger *slog.Logger) (*serve.Server, error) {
	if err := clearStale(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".keyless-sock-")
	if err != nil {
		return nil, fmt.Errorf("making the socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	name := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", name)
	if err != nil {
		return nil, err
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (*serve.Server, error) {
		ln.Close()
		return nil, err
	}
	if err := os.Chmod(name, mode&fs.ModePerm); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Lchown(name, -1, gid); err != nil {
			return fail(fmt.Errorf("giving the socket to group %d: %w", gid, err))
		}
	}
	if err := renameNoReplace(name, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%s appeared while the agent was starting; it is not replaced", path)
		}
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	srv := serve.Serve(&unixListener{UnixListener: ul, path: path, fi: fi}, h, serve.Options{Logger: logger, ErrorLevel: slog.LevelDebug,
		MaxHeaderBytes: MaxHeaderBytes, WriteTimeout: 30 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if p := peerOf(c); p != nil {
				return context.WithValue(ctx, peerKey{}, p)
			}
			return ctx
		}})
	return srv, nil
}

// unixListener is at path (it was made elsewhere and renamed), and
// removes its socket when closed, unless something else has taken the
// path since.
type unixListener struct {
	*net.UnixListener
	path string
	fi   fs.FileInfo
	once sync.Once
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}

// clearStale removes a socket left by an agent that is gone.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; remove it or choose another listen.socket.path", path)
	}
	if !ownedByUs(fi) {
		return fmt.Errorf("%s is another user's socket; it is not replaced", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s is in use: is another keyless agent running?", path)
	}
	return os.Remove(path)
}
