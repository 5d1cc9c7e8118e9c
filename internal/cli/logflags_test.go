package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/keyless-dev/keyless/internal/logline"
)

// parseLogFlags parses args (and the KEYLESS_* environment) as a command
// with the logging flags and --quiet would.
func parseLogFlags(t *testing.T, args ...string) (*cobra.Command, *logFlags) {
	t.Helper()
	cmd := &cobra.Command{Use: "daemon"}
	l := registerLogFlags(cmd, "log less")
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if err := applyEnvironment(cmd.Flags()); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return cmd, l
}

// TestLogOptions: what the flags make of a log written to a file or a
// pipe (not a terminal), by a daemon and by a one-shot renew.
func TestLogOptions(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		env    map[string]string
		daemon bool
		want   logline.Options
	}{
		{nil, nil, true, logline.Options{Level: slog.LevelInfo, Timestamps: true}},
		{nil, nil, false, logline.Options{Level: slog.LevelInfo}},
		{[]string{"--log-timestamps", "never"}, nil, true, logline.Options{Level: slog.LevelInfo}},
		{[]string{"--log-timestamps", "always"}, nil, false, logline.Options{Level: slog.LevelInfo, Timestamps: true}},
		{[]string{"--log-format", "json"}, nil, false, logline.Options{Level: slog.LevelInfo, Format: logline.JSON, Timestamps: true}},
		{[]string{"--log-format", "json", "--log-timestamps", "never"}, nil, true, logline.Options{Level: slog.LevelInfo, Format: logline.JSON}},
		{[]string{"--log-level", "debug"}, nil, true, logline.Options{Level: slog.LevelDebug, Timestamps: true}},
		{[]string{"--quiet"}, nil, true, logline.Options{Level: slog.LevelWarn, Timestamps: true}},
		{[]string{"--quiet", "--log-level", "warn"}, nil, true, logline.Options{Level: slog.LevelWarn, Timestamps: true}},
		// The command line wins over the environment.
		{[]string{"--quiet"}, map[string]string{"KEYLESS_LOG_LEVEL": "debug"}, true, logline.Options{Level: slog.LevelWarn, Timestamps: true}},
		{[]string{"--log-level", "error"}, map[string]string{"KEYLESS_QUIET": "true"}, true, logline.Options{Level: slog.LevelError, Timestamps: true}},
		{nil, map[string]string{"KEYLESS_LOG_FORMAT": "json", "KEYLESS_LOG_LEVEL": "error"}, true, logline.Options{Level: slog.LevelError, Format: logline.JSON, Timestamps: true}},
	} {
		t.Run(fmt.Sprint(tc.args, tc.env, tc.daemon), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd, l := parseLogFlags(t, tc.args...)
			got, err := l.options(cmd, &bytes.Buffer{}, tc.daemon)
			if err != nil || got != tc.want {
				t.Errorf("%q %v daemon %v: %+v, %v; want %+v", tc.args, tc.env, tc.daemon, got, err, tc.want)
			}
		})
	}
}

func TestLogLevelContradictsQuiet(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--quiet", "--log-level", "debug"}, nil, "--quiet means --log-level warn, which contradicts --log-level debug; give one of them"},
		{nil, map[string]string{"KEYLESS_QUIET": "1", "KEYLESS_LOG_LEVEL": "info"}, "KEYLESS_QUIET=true means --log-level warn, which contradicts KEYLESS_LOG_LEVEL=info; give one of them"},
	} {
		t.Run(fmt.Sprint(tc.args, tc.env), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd, l := parseLogFlags(t, tc.args...)
			_, err := l.options(cmd, &bytes.Buffer{}, true)
			if _, ok := err.(*usageError); !ok || err.Error() != tc.want {
				t.Errorf("%q %v: %v; want the usage error %q", tc.args, tc.env, err, tc.want)
			}
		})
	}
}

// TestLogArgs: the logging flags given to renew --print-unit go into the
// service's command line.
func TestLogArgs(t *testing.T) {
	cmd, l := parseLogFlags(t, "--log-format", "json", "--quiet")
	if got, want := l.args(cmd.Flags()), []string{"--log-format", "json", "--quiet"}; !slices.Equal(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
	cmd, l = parseLogFlags(t)
	if got := l.args(cmd.Flags()); len(got) != 0 {
		t.Errorf("args %q, want none", got)
	}
}

func TestLogWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &logWriter{logger: slog.New(logline.NewHandler(&buf, logline.Options{Format: logline.JSON})), msg: "--exec output"}
	for _, p := range []string{"one\ntw", "o\n", "three"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	w.Flush()
	w.Flush()
	want := `{"level":"INFO","msg":"--exec output","line":"one"}
{"level":"INFO","msg":"--exec output","line":"two"}
{"level":"INFO","msg":"--exec output","line":"three"}
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	long := strings.Repeat("x", maxLogLine+10)
	w.Write([]byte(long))
	w.Flush()
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Errorf("a %d-byte line became %d records, want 2", len(long), n)
	}
}
