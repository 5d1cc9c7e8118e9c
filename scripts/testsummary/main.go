// Command testsummary reads `go test -json` on standard input and prints
// what `go test` prints without -v (a line per package, and the output of
// each test that failed), then every skipped test with the reason it
// gave: a skip is visible in every run, never buried in -v output.
//
//	go test -json ./... | go run ./scripts/testsummary [-label NAME] [-no-skips]
//
// With -show TEST (repeatable), a test of that name prints its output even
// when it passed: what a module reports on purpose (interop/docs lists the
// blocks it does not run) is not hidden either.
//
// It exits 1 when a test or a package failed, and, with -no-skips (what
// scripts/test uses for the interop modules when KEYLESS_INTEROP=require),
// when any test was skipped. It is part of the test tooling: nothing in
// keyless imports it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json's TestEvent).
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

type key struct{ pkg, test string }

type skip struct {
	pkg, test, reason string
}

type summary struct {
	out     io.Writer
	show    map[string]bool
	outputs map[key][]string
	skips   []skip
	failed  bool
}

func main() {
	label := flag.String("label", "", "a name for this run in the skip list (a module)")
	noSkips := flag.Bool("no-skips", false, "fail when any test was skipped")
	show := map[string]bool{}
	flag.Func("show", "print this test's output even when it passes (repeatable)", func(name string) error {
		show[name] = true
		return nil
	})
	flag.Parse()
	s := &summary{out: os.Stdout, outputs: map[key][]string{}, show: show}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	os.Exit(s.report(*label, *noSkips))
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event (go vet's or the toolchain's own lines).
			fmt.Fprintln(s.out, string(line))
			continue
		}
		s.handle(e)
	}
	return sc.Err()
}

func (s *summary) handle(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.out, e.Output)
	case "build-fail":
		s.failed = true
	case "output":
		if e.Test == "" {
			// The package's own lines: "ok pkg 1.2s", "FAIL", panics
			// outside a test, "? pkg [no test files]".
			if !strings.HasPrefix(e.Output, "PASS\n") && !strings.HasPrefix(e.Output, "=== ") {
				fmt.Fprint(s.out, e.Output)
			}
			return
		}
		s.outputs[k] = append(s.outputs[k], e.Output)
	case "fail":
		if e.Test == "" {
			s.failed = true
			return
		}
		s.failed = true
		for _, o := range s.outputs[k] {
			fmt.Fprint(s.out, o)
		}
		delete(s.outputs, k)
	case "skip":
		if e.Test != "" {
			s.skips = append(s.skips, skip{pkg: e.Package, test: e.Test, reason: reason(s.outputs[k])})
		}
		delete(s.outputs, k)
	case "pass":
		if s.show[e.Test] {
			for _, o := range s.outputs[k] {
				if !strings.HasPrefix(o, "=== ") {
					fmt.Fprint(s.out, o)
				}
			}
		}
		delete(s.outputs, k)
	}
}

// reason is what a skipped test said, without the framing lines.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}

func (s *summary) report(label string, noSkips bool) int {
	sort.Slice(s.skips, func(i, j int) bool {
		if s.skips[i].pkg != s.skips[j].pkg {
			return s.skips[i].pkg < s.skips[j].pkg
		}
		return s.skips[i].test < s.skips[j].test
	})
	where := ""
	if label != "" {
		where = " in " + label
	}
	if len(s.skips) == 0 {
		fmt.Fprintf(s.out, "skipped tests%s: none\n", where)
	} else {
		fmt.Fprintf(s.out, "skipped tests%s (%d):\n", where, len(s.skips))
		for _, sk := range s.skips {
			fmt.Fprintf(s.out, "  SKIP %s %s: %s\n", sk.pkg, sk.test, sk.reason)
		}
	}
	switch {
	case s.failed:
		return 1
	case noSkips && len(s.skips) > 0:
		fmt.Fprintf(s.out, "FAIL: %d tests skipped%s, and none may be here\n", len(s.skips), where)
		return 1
	}
	return 0
}
