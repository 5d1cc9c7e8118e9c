package jsonstr_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/keyless-dev/keyless/internal/jsonstr"
)

// FuzzAppend: for any string, Append writes what json.Marshal writes.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\back`, "\x00\x01\b\f\n\r\t\x1f\x7f", "<a>&b", "\u2028\u2029", "\xff\xfe", "é✓😀", "a\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonstr.Append([]byte("x"), s); !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("Append(%q) = %s, json.Marshal %s", s, got, want)
		}
	})
}
