package logline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestLoggerQuotesUnprintableValues(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, slog.LevelDebug)
	l.Debug("loaded certificate", "subject", "CN=evil\x1b[2J\nline", "serial", "123", "empty", "")
	got := buf.String()
	want := "keyless: debug: loaded certificate subject=\"CN=evil\\x1b[2J\\nline\" serial=123 empty=\"\"\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	buf.Reset()
	New(&buf, slog.LevelWarn).Debug("hidden")
	New(&buf, slog.LevelWarn).Warn("shown", "dir", "/tmp/x y")
	if buf.String() != "keyless: warning: shown dir=\"/tmp/x y\"\n" {
		t.Fatalf("got %q", buf.String())
	}
}

// at is the time of the records these tests handle: not UTC, with more
// than milliseconds, so that the tests see both converted.
var at = time.Date(2026, 11, 26, 16, 4, 5, 123456789, time.FixedZone("CET", 3600))

// handle gives h one record at time t and returns what it wrote.
func handle(t *testing.T, o Options, when time.Time, level slog.Level, msg string, args ...any) string {
	t.Helper()
	var buf bytes.Buffer
	h := NewHandler(&buf, o)
	if !h.Enabled(context.Background(), level) {
		return ""
	}
	r := slog.NewRecord(when, level, msg, 0)
	r.Add(args...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		when time.Time
		want string
	}{
		{"no timestamps", Options{}, at, "keyless: warning: renewal failed err=\"CA unreachable\" retryIn=30s\n"},
		{"timestamps in UTC with milliseconds", Options{Timestamps: true}, at,
			"2026-11-26T15:04:05.123Z keyless: warning: renewal failed err=\"CA unreachable\" retryIn=30s\n"},
		{"a record without a time has none", Options{Timestamps: true}, time.Time{},
			"keyless: warning: renewal failed err=\"CA unreachable\" retryIn=30s\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := handle(t, tc.o, tc.when, slog.LevelWarn, "renewal failed", "err", errors.New("CA unreachable"), "retryIn", 30*time.Second)
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// hostile is what a certificate subject or a request could carry: a
// terminal escape, a newline that forges a second log line, a
// bidirectional override, CSI as a C1 control and as the byte 0x9b
// (invalid UTF-8; CSI on 8-bit terminals), and quotes.
const hostile = "CN=evil\x1b[31m\nkeyless: error: forged\u202e\u009b\x9b\"}"

func TestTextEscapesHostileMessagesAndValues(t *testing.T) {
	for _, ts := range []bool{false, true} {
		got := handle(t, Options{Timestamps: ts}, at, slog.LevelInfo, "issued "+hostile, "subject", hostile)
		want := `keyless: issued CN=evil\x1b[31m\nkeyless: error: forged\u202e\u009b\x9b"} subject="CN=evil\x1b[31m\nkeyless: error: forged\u202e\u009b\x9b\"}"` + "\n"
		if ts {
			want = "2026-11-26T15:04:05.123Z " + want
		}
		if got != want {
			t.Errorf("timestamps %v:\ngot  %s\nwant %s", ts, got, want)
		}
		checkOneLine(t, got)
	}
}

// checkOneLine fails unless line is one line of printable ASCII and
// UTF-8, ending in its only newline.
func checkOneLine(t *testing.T, line string) {
	t.Helper()
	if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
		t.Errorf("not one line: %q", line)
	}
	if !utf8.ValidString(line) {
		t.Errorf("invalid UTF-8: %q", line)
	}
	for _, r := range strings.TrimSuffix(line, "\n") {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u202e' {
			t.Errorf("unprintable %U in %q", r, line)
		}
	}
}

// decode parses one JSON line.
func decode(t *testing.T, line string) map[string]any {
	t.Helper()
	checkOneLine(t, line)
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %v: %q", err, line)
	}
	return m
}

func TestJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		when time.Time
		want map[string]any
	}{
		{"timestamps", Options{Format: JSON, Timestamps: true}, at, map[string]any{
			"time": "2026-11-26T15:04:05.123Z", "level": "WARN", "msg": "renewal failed", "err": "CA unreachable", "retryIn": float64(30 * time.Second), "attempt": float64(3)}},
		{"no timestamps", Options{Format: JSON}, at, map[string]any{
			"level": "WARN", "msg": "renewal failed", "err": "CA unreachable", "retryIn": float64(30 * time.Second), "attempt": float64(3)}},
		{"a record without a time has none", Options{Format: JSON, Timestamps: true}, time.Time{}, map[string]any{
			"level": "WARN", "msg": "renewal failed", "err": "CA unreachable", "retryIn": float64(30 * time.Second), "attempt": float64(3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decode(t, handle(t, tc.o, tc.when, slog.LevelWarn, "renewal failed", "err", errors.New("CA unreachable"), "retryIn", 30*time.Second, "attempt", 3))
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestJSONEscapesHostileMessagesAndValues(t *testing.T) {
	line := handle(t, Options{Format: JSON, Timestamps: true}, at, slog.LevelInfo, "issued "+hostile, hostile, hostile)
	m := decode(t, line)
	// Invalid UTF-8 becomes U+FFFD; the rest survives, escaped.
	want := valid(hostile)
	if m["msg"] != "issued "+want || m[want] != want {
		t.Errorf("got %q", line)
	}
	if strings.Contains(line, "\x1b") || strings.Count(line, "\n") != 1 {
		t.Errorf("raw escape or newline in %q", line)
	}
}

// secretError is an error whose message is safe to show and whose fields
// are not: what json.Marshal would write of it.
type secretError struct{ Token string }

func (e *secretError) Error() string                { return "token refused" }
func (e *secretError) MarshalJSON() ([]byte, error) { return json.Marshal(e.Token) }

// credentials show only their id.
type credentials struct{ AccessKeyID, SecretAccessKey string }

func (c credentials) String() string { return "credentials " + c.AccessKeyID }

func TestJSONWritesValuesAsTheirText(t *testing.T) {
	line := handle(t, Options{Format: JSON}, at, slog.LevelError, "refused",
		"err", &secretError{Token: "eyJhbGciOiJFUzI1NiJ9.secret"},
		"creds", credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI"},
		slog.Group("request", "err", error(&secretError{Token: "eyJ.nested"})))
	if strings.Contains(line, "eyJ") || strings.Contains(line, "wJalr") {
		t.Fatalf("a secret field was written: %s", line)
	}
	m := decode(t, line)
	if m["err"] != "token refused" || m["creds"] != "credentials ASIAEXAMPLE" {
		t.Errorf("got %s", line)
	}
	if g, ok := m["request"].(map[string]any); !ok || g["err"] != "token refused" {
		t.Errorf("group: got %s", line)
	}
}

func TestLevels(t *testing.T) {
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
	for _, f := range []Format{Text, JSON} {
		for _, min := range levels {
			var buf bytes.Buffer
			l := slog.New(NewHandler(&buf, Options{Format: f, Level: min}))
			for _, lv := range levels {
				l.Log(context.Background(), lv, "at "+LevelName(lv))
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
				if f == JSON {
					got = append(got, decode(t, line+"\n")["msg"].(string))
				} else {
					_, msg, _ := strings.Cut(line, "keyless: ")
					got = append(got, msg)
				}
			}
			var want []string
			for _, lv := range levels {
				if lv < min {
					continue
				}
				if f == JSON {
					want = append(want, "at "+LevelName(lv))
				} else {
					want = append(want, map[slog.Level]string{slog.LevelDebug: "debug: ", slog.LevelWarn: "warning: ", slog.LevelError: "error: "}[lv]+"at "+LevelName(lv))
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("%s at %s: (-want +got)\n%s", f, LevelName(min), d)
			}
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"debug", "info", "warn", "error"} {
		l, err := ParseLevel(s)
		if err != nil || LevelName(l) != s {
			t.Errorf("ParseLevel(%q) = %v, %v", s, l, err)
		}
	}
	for _, s := range []string{"", "INFO", "warning", "trace", "info+1"} {
		if _, err := ParseLevel(s); err == nil || err.Error() != "want debug, info, warn or error" {
			t.Errorf("ParseLevel(%q): %v", s, err)
		}
	}
	for _, f := range []Format{Text, JSON} {
		if g, err := ParseFormat(f.String()); g != f || err != nil {
			t.Errorf("ParseFormat(%q) = %v, %v", f, g, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil || err.Error() != "want text or json" {
		t.Errorf("ParseFormat(xml): %v", err)
	}
}

// valid is s with each byte of invalid UTF-8 replaced by U+FFFD, as JSON
// writes it.
func valid(s string) string { return string([]rune(s)) }

// FuzzOneLine: whatever a message, key or value holds, each format writes
// one line of printable text, and JSON writes an object with the message.
func FuzzOneLine(f *testing.F) {
	f.Add("renewed", "serial", "123")
	f.Add(hostile, "k\x1b", "\r\n\x00\u2028\u2029")
	f.Fuzz(func(t *testing.T, msg, key, value string) {
		for _, ts := range []bool{false, true} {
			checkOneLine(t, handle(t, Options{Timestamps: ts}, at, slog.LevelInfo, msg, key, value))
			m := decode(t, handle(t, Options{Format: JSON, Timestamps: ts}, at, slog.LevelInfo, msg, key, value))
			if m["msg"] != valid(msg) {
				t.Errorf("msg %q, want %q", m["msg"], msg)
			}
		}
	})
}
