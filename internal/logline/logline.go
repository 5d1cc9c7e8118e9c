// Package logline formats log/slog records the way every keyless command
// and daemon writes them. The text format is one line per record:
// "keyless: warning: message k=v", with values quoted when they hold
// spaces, quotes or anything unprintable and unprintable characters in the
// message escaped, so that a certificate subject cannot write terminal
// escapes or forge a line; a daemon may put an RFC 3339 UTC timestamp
// first. The JSON format is one object per line, as log/slog's
// JSONHandler writes it ("time", "level", "msg", then the attributes).
// Callers never log secrets; the handlers do not try to guess them. Any
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
	"unicode/utf16"
	"unicode/utf8"
)

// TimeFormat is how a timestamp is written, always in UTC: RFC 3339 with
// milliseconds, which sorts as text and is what log collectors parse.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Format is how records are written.
type Format int

const (
	// Text is one line a record: "keyless: warning: message k=v".
	Text Format = iota
	// JSON is one JSON object a record, as log/slog's JSONHandler.
	JSON
)

func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "text"
}

// ParseFormat parses "text" or "json".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text":
		return Text, nil
	case "json":
		return JSON, nil
	}
	return Text, fmt.Errorf("want text or json")
}

// ParseLevel parses the name of a level: "debug", "info", "warn" or
// "error".
func ParseLevel(s string) (slog.Level, error) {
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if s == LevelName(l) {
			return l, nil
		}
	}
	return slog.LevelInfo, fmt.Errorf("want debug, info, warn or error")
}

// LevelName is the name ParseLevel takes for l: "debug", "info", "warn"
// or "error" (the level at or below l).
func LevelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// Options shape a handler. The zero value is the text format at Info,
// without timestamps.
type Options struct {
	// Level is the least severe level written; nil means Info.
	Level slog.Leveler
	// Format is Text or JSON.
	Format Format
	// Timestamps puts the record's time first: before "keyless:" in text,
	// as "time" in JSON. A record with a zero time has none.
	Timestamps bool
}

// New returns a logger that writes records at level and above to w as
// text without timestamps, as short commands log: "keyless: error: ...",
// "keyless: warning: ...", "keyless: ..." for Info (what long-running
// commands report) and "keyless: debug: ...".
func New(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(NewHandler(w, Options{Level: level}))
}

// NewHandler returns a handler that writes records to w as o says. The
// time of a record is the one log/slog gave it when it was logged. It is
// safe for concurrent use; each record is one Write.
func NewHandler(w io.Writer, o Options) slog.Handler {
	level := o.Level
	if level == nil {
		level = slog.LevelInfo
	}
	if o.Format == JSON {
		return slog.NewJSONHandler(printable{w}, &slog.HandlerOptions{Level: level, ReplaceAttr: jsonAttr(o.Timestamps)})
	}
	return &lineHandler{w: w, level: level, timestamps: o.Timestamps, mu: &sync.Mutex{}}
}

// jsonAttr writes the time in UTC as TimeFormat (or drops it), and any
// value that is not a string, number, boolean, duration or time as its
// text, as the text format writes it: an error becomes its message, and
// no struct is marshalled field by field, which would bypass the
// String or Error method that decides what of it may be shown (and a
// json.Marshaler on an error type).
func jsonAttr(timestamps bool) func([]string, slog.Attr) slog.Attr {
	return func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 {
			switch a.Key {
			case slog.TimeKey:
				if !timestamps || a.Value.Kind() != slog.KindTime {
					return slog.Attr{}
				}
				return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(TimeFormat))
			case slog.LevelKey, slog.MessageKey:
				return a
			}
		}
		if a.Value.Kind() == slog.KindAny {
			a.Value = slog.StringValue(a.Value.String())
		}
		return a
	}
}

// printable writes JSON with every unprintable character that
// encoding/json leaves as it is (C1 controls, bidirectional overrides) as
// a \u escape, which decodes to the same string: a log read on a terminal
// (tail, docker logs) cannot drive it. slog's JSONHandler already escapes
// ASCII controls and invalid UTF-8, and writes each record in one Write,
// whose final newline is the only one.
type printable struct{ w io.Writer }

func (p printable) Write(b []byte) (int, error) {
	s := string(b)
	clean := true
	for _, r := range strings.TrimSuffix(s, "\n") {
		if !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return p.w.Write(b)
	}
	var out strings.Builder
	for i, r := range s {
		switch {
		case r == '\n' && i == len(s)-1, unicode.IsPrint(r):
			out.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	if _, err := io.WriteString(p.w, out.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}

type lineHandler struct {
	w          io.Writer
	level      slog.Leveler
	timestamps bool
	attrs      []slog.Attr
	prefix     string
	mu         *sync.Mutex
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// bufPool holds line buffers: the agent writes an audit line for every
// request, so a line costs no allocation once warm.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	if h.timestamps && !r.Time.IsZero() {
		b = r.Time.UTC().AppendFormat(b, TimeFormat)
		b = append(b, ' ')
	}
	b = append(b, "keyless: "...)
	switch {
	case r.Level >= slog.LevelError:
		b = append(b, "error: "...)
	case r.Level >= slog.LevelWarn:
		b = append(b, "warning: "...)
	case r.Level >= slog.LevelInfo:
	default:
		b = append(b, "debug: "...)
	}
	b = appendEscaped(b, r.Message)
	write := func(a slog.Attr) bool {
		if a.Equal(slog.Attr{}) {
			return true
		}
		b = append(b, ' ')
		b = appendEscaped(b, h.prefix)
		b = appendEscaped(b, a.Key)
		b = append(b, '=')
		b = appendValue(b, a.Value.Resolve())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b = append(b, '\n')
	h.mu.Lock()
	_, err := h.w.Write(b)
	h.mu.Unlock()
	if cap(b) <= 16<<10 {
		*bp = b
		bufPool.Put(bp)
	}
	return err
}

// appendValue appends v as one token: numbers and booleans as they are,
// anything else quoted when needsQuoting says so.
func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	}
	s := v.String()
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
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

// appendEscaped appends s with every unprintable character (control
// characters such as ESC and newline, invalid UTF-8, bidirectional
// overrides) as its Go escape, so that a message stays one line and
// cannot drive a terminal.
func appendEscaped(b []byte, s string) []byte {
	if printableASCII(s) {
		return append(b, s...)
	}
	for s != "" {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 || !unicode.IsPrint(r) {
			q := strconv.Quote(s[:n])
			b = append(b, q[1:len(q)-1]...)
		} else {
			b = append(b, s[:n]...)
		}
		s = s[n:]
	}
	return b
}

// printableASCII reports whether s is only printable ASCII, the common
// case, which needs no rune-by-rune look.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// needsQuoting reports whether v must be quoted to stay one readable token:
// empty, or holding spaces, quotes, '=', invalid UTF-8 or anything
// unprintable (a certificate subject could carry terminal escapes).
func needsQuoting(v string) bool {
	if v == "" {
		return true
	}
	if printableASCII(v) {
		return strings.ContainsAny(v, ` "=\\`)
	}
	for _, r := range v {
		if r == ' ' || r == '"' || r == '=' || r == '\\' || r == utf8.RuneError || !unicode.IsPrint(r) {
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
