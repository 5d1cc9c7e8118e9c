package main

import (
	"bytes"
	"strings"
	"testing"
)

const stream = `{"Action":"start","Package":"ex/a"}
{"Action":"run","Package":"ex/a","Test":"TestOK"}
{"Action":"output","Package":"ex/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"ex/a","Test":"TestOK","Output":"--- PASS: TestOK (0.00s)\n"}
{"Action":"pass","Package":"ex/a","Test":"TestOK"}
{"Action":"run","Package":"ex/a","Test":"TestPeer"}
{"Action":"output","Package":"ex/a","Test":"TestPeer","Output":"=== RUN   TestPeer\n"}
{"Action":"output","Package":"ex/a","Test":"TestPeer","Output":"    peer_test.go:9: openssl not found on PATH; install openssl\n"}
{"Action":"output","Package":"ex/a","Test":"TestPeer","Output":"--- SKIP: TestPeer (0.00s)\n"}
{"Action":"skip","Package":"ex/a","Test":"TestPeer"}
{"Action":"output","Package":"ex/a","Output":"PASS\n"}
{"Action":"output","Package":"ex/a","Output":"ok  \tex/a\t0.01s\n"}
{"Action":"pass","Package":"ex/a"}
`

const failing = `{"Action":"run","Package":"ex/b","Test":"TestBad"}
{"Action":"output","Package":"ex/b","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"ex/b","Test":"TestBad","Output":"    bad_test.go:3: got 1, want 2\n"}
{"Action":"output","Package":"ex/b","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"ex/b","Test":"TestBad"}
{"Action":"output","Package":"ex/b","Output":"FAIL\tex/b\t0.01s\n"}
{"Action":"fail","Package":"ex/b"}
`

func run(t *testing.T, in string, noSkips bool) (string, int) {
	t.Helper()
	var out bytes.Buffer
	s := &summary{out: &out, outputs: map[key][]string{}}
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	code := s.report("interop/x", noSkips)
	return out.String(), code
}

func TestSkipsAreListed(t *testing.T) {
	out, code := run(t, stream, false)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"ok  \tex/a\t0.01s\n", "skipped tests in interop/x (1):\n",
		"  SKIP ex/a TestPeer: peer_test.go:9: openssl not found on PATH; install openssl\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "TestOK") {
		t.Errorf("a passing test's output was printed:\n%s", out)
	}
}

func TestNoSkipsFails(t *testing.T) {
	out, code := run(t, stream, true)
	if code != 1 || !strings.Contains(out, "FAIL: 1 tests skipped in interop/x") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestFailuresShowTheirOutput(t *testing.T) {
	out, code := run(t, failing, false)
	if code != 1 || !strings.Contains(out, "bad_test.go:3: got 1, want 2") || !strings.Contains(out, "FAIL\tex/b") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "skipped tests in interop/x: none") {
		t.Errorf("no skip line:\n%s", out)
	}
}

func TestShowPrintsAPassingTest(t *testing.T) {
	var out bytes.Buffer
	s := &summary{out: &out, outputs: map[key][]string{}, show: map[string]bool{"TestOK": true}}
	in := strings.Replace(stream, `"Output":"--- PASS: TestOK`, `"Output":"    ok_test.go:4: blocks not run (1)\n"}
{"Action":"output","Package":"ex/a","Test":"TestOK","Output":"--- PASS: TestOK`, 1)
	if err := s.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if code := s.report("interop/x", false); code != 0 {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(out.String(), "    ok_test.go:4: blocks not run (1)\n--- PASS: TestOK") || strings.Contains(out.String(), "=== RUN") {
		t.Errorf("TestOK's output, shown, without the RUN line:\n%s", out.String())
	}
}
