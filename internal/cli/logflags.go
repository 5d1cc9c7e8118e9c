package cli

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/keyless-dev/keyless/internal/logline"
)

// logFlags are the logging flags of every long-running command (renew
// --daemon, ca serve, emulator, dev): --log-format, --log-level,
// --log-timestamps and, where a command had it first, --quiet. Short
// commands do not take them: they log warnings (and --debug lines) as
// text, with no timestamps.
type logFlags struct {
	format     formatValue
	level      levelValue
	timestamps timestampsValue
	quiet      bool
}

// registerLogFlags adds the logging flags to cmd. quiet, when not empty,
// is the help of a --quiet flag that means --log-level warn.
func registerLogFlags(cmd *cobra.Command, quiet string) *logFlags {
	l := &logFlags{level: levelValue(slog.LevelInfo), timestamps: timestampsAuto}
	f := cmd.Flags()
	f.Var(&l.format, "log-format", "log lines as text (keyless: warning: message key=value) or json (one object a line: time, level, msg, attributes)")
	f.Var(&l.level, "log-level", "least severe messages logged: debug, info, warn or error")
	f.Var(&l.timestamps, "log-timestamps", "start text lines with the UTC time: auto (when standard error is not a terminal: systemd, docker, a file), always or never (json has a time field unless never)")
	if quiet != "" {
		f.BoolVar(&l.quiet, "quiet", false, quiet+" (the same as --log-level warn)")
	}
	return l
}

// logger returns the logger the flags describe, writing to w. daemon says
// whether the command runs as a daemon, which auto timestamps are for
// (renew logs without them unless it has --daemon).
func (l *logFlags) logger(cmd *cobra.Command, w io.Writer, daemon bool) (*slog.Logger, error) {
	o, err := l.options(cmd, w, daemon)
	if err != nil {
		return nil, err
	}
	return slog.New(logline.NewHandler(w, o)), nil
}

// options are the handler options the flags describe; see logger.
func (l *logFlags) options(cmd *cobra.Command, w io.Writer, daemon bool) (logline.Options, error) {
	level, err := l.resolveLevel(cmd.Flags())
	if err != nil {
		return logline.Options{}, err
	}
	ts := l.timestamps == timestampsAlways
	if l.timestamps == timestampsAuto {
		// JSON is read by programs, which want the time; text on a
		// terminal is read as it is written.
		ts = l.json() || daemon && !isTerminal(w)
	}
	return logline.Options{Level: level, Format: logline.Format(l.format), Timestamps: ts}, nil
}

// json reports whether the log is JSON, where every line must be a record.
func (l *logFlags) json() bool { return logline.Format(l.format) == logline.JSON }

// levelSet reports whether --log-level (or --quiet) was given, on the
// command line or in the environment.
func (l *logFlags) levelSet(fs *pflag.FlagSet) bool {
	return l.quiet || fs.Changed("log-level")
}

// args are the logging flags that were given, as a service definition
// passes them to the daemon.
func (l *logFlags) args(fs *pflag.FlagSet) []string {
	var args []string
	for _, name := range []string{"log-format", "log-level", "log-timestamps"} {
		if f := fs.Lookup(name); f.Changed {
			args = append(args, "--"+name, f.Value.String())
		}
	}
	if l.quiet && !fs.Changed("log-level") {
		args = append(args, "--quiet")
	}
	return args
}

// resolveLevel is --log-level, or warn for --quiet. The two given with
// different levels contradict each other, unless one of them comes from
// the environment, which the command line overrides.
func (l *logFlags) resolveLevel(fs *pflag.FlagSet) (slog.Level, error) {
	level := slog.Level(l.level)
	lf := fs.Lookup("log-level")
	if !l.quiet || level == slog.LevelWarn {
		return level, nil
	}
	if !lf.Changed {
		return slog.LevelWarn, nil
	}
	qf := fs.Lookup("quiet")
	switch qEnv, lEnv := fromEnvironment(qf), fromEnvironment(lf); {
	case lEnv && !qEnv:
		return slog.LevelWarn, nil
	case qEnv && !lEnv:
		return level, nil
	}
	return 0, usageErrorf("%s means --log-level warn, which contradicts %s; give one of them", given(qf), given(lf))
}

// given names how flag f was given: "--log-level debug", or
// "KEYLESS_LOG_LEVEL=debug".
func given(f *pflag.Flag) string {
	if fromEnvironment(f) {
		return envName(f.Name) + "=" + f.Value.String()
	}
	if f.Value.Type() == "bool" {
		return "--" + f.Name
	}
	return "--" + f.Name + " " + f.Value.String()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

type formatValue logline.Format

func (v *formatValue) String() string { return logline.Format(*v).String() }
func (v *formatValue) Type() string   { return "format" }
func (v *formatValue) Set(s string) error {
	f, err := logline.ParseFormat(s)
	if err != nil {
		return err
	}
	*v = formatValue(f)
	return nil
}

type levelValue slog.Level

func (v *levelValue) String() string { return logline.LevelName(slog.Level(*v)) }
func (v *levelValue) Type() string   { return "level" }
func (v *levelValue) Set(s string) error {
	l, err := logline.ParseLevel(s)
	if err != nil {
		return err
	}
	*v = levelValue(l)
	return nil
}

type timestampsValue string

const (
	timestampsAuto   timestampsValue = "auto"
	timestampsAlways timestampsValue = "always"
	timestampsNever  timestampsValue = "never"
)

func (v *timestampsValue) String() string {
	if *v == "" {
		return string(timestampsAuto)
	}
	return string(*v)
}
func (v *timestampsValue) Type() string { return "when" }
func (v *timestampsValue) Set(s string) error {
	switch t := timestampsValue(s); t {
	case timestampsAuto, timestampsAlways, timestampsNever:
		*v = t
		return nil
	}
	return fmt.Errorf("want auto, always or never")
}

// logWriter logs each line written to it as one Info record: how the
// output of renew's --exec joins a JSON log instead of breaking it with
// lines of its own. Flush logs a last line that has no newline.
type logWriter struct {
	logger *slog.Logger
	msg    string
	mu     sync.Mutex
	buf    []byte
}

// maxLogLine bounds a record's line: a longer one is cut into several.
const maxLogLine = 16 << 10

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		switch {
		case i >= 0 && i <= maxLogLine:
			w.logger.Info(w.msg, "line", string(w.buf[:i]))
			w.buf = w.buf[i+1:]
		case len(w.buf) >= maxLogLine:
			w.logger.Info(w.msg, "line", string(w.buf[:maxLogLine]))
			w.buf = w.buf[maxLogLine:]
		default:
			return len(p), nil
		}
	}
}

// Flush logs what is left of a line.
func (w *logWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.logger.Info(w.msg, "line", string(w.buf))
		w.buf = nil
	}
}
