package logline

import (
	"bytes"
	"log/slog"
	"testing"
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
