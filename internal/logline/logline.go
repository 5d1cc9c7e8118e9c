// Package logline formats log/slog records as the one-line text every
// keyless command and daemon writes: "keyless: warning: message k=v", with
// values quoted when they hold spaces, quotes or anything unprintable, so
// that a certificate subject cannot write terminal escapes into a log.
// Callers never log secrets; the handler does not try to guess them. Any
// keyless package may import it; loggers are made by the CLI and passed
// down.
package logline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// New returns a logger that writes records at level and above to w:
// "keyless: error: ...", "keyless: warning: ...", "keyless: ..." for Info
// (what long-running commands report) and "keyless: debug: ...".
func New(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(&lineHandler{w: w, level: level, mu: &sync.Mutex{}})
}

type lineHandler struct {
	w      io.Writer
	level  slog.Level
	attrs  []slog.Attr
	prefix string
	mu     *sync.Mutex
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("keyless: ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level >= slog.LevelInfo:
		b.WriteString("")
	default:
		b.WriteString("debug: ")
	}
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		if a.Equal(slog.Attr{}) {
			return true
		}
		fmt.Fprintf(&b, " %s%s=", h.prefix, a.Key)
		v := a.Value.Resolve().String()
		if needsQuoting(v) {
			b.WriteString(strconv.Quote(v))
		} else {
			b.WriteString(v)
		}
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b.WriteString("\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &n
}

func (h *lineHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

// needsQuoting reports whether v must be quoted to stay one readable token:
// empty, or holding spaces, quotes, '=' or anything unprintable (a
// certificate subject could carry terminal escapes).
func needsQuoting(v string) bool {
	if v == "" {
		return true
	}
	for _, r := range v {
		if r == ' ' || r == '"' || r == '=' || r == '\\' || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

// Or returns l, or a logger that discards everything when l is nil: how
// packages default an optional Logger field.
func Or(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
