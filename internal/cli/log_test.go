package cli

import (
	"bytes"
	"testing"
)

func TestLoggerQuotesUnprintableValues(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(&buf, true)
	l.Debug("loaded certificate", "subject", "CN=evil\x1b[2J\nline", "serial", "123", "empty", "")
	got := buf.String()
	want := "keyless: debug: loaded certificate subject=\"CN=evil\\x1b[2J\\nline\" serial=123 empty=\"\"\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	buf.Reset()
	newLogger(&buf, false).Debug("hidden")
	newLogger(&buf, false).Warn("shown", "dir", "/tmp/x y")
	if buf.String() != "keyless: warning: shown dir=\"/tmp/x y\"\n" {
		t.Fatalf("got %q", buf.String())
	}
}
