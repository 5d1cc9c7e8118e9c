package yamlfile

import (
	"strconv"
	"strings"
	"testing"
)

type raw struct {
	Name  string `yaml:"name"`
	Items []item `yaml:"items"`
}

type item struct {
	ID int `yaml:"id"`
}

func allowed(typ string) string {
	if strings.HasSuffix(typ, "item") {
		return "id"
	}
	return "name, items"
}

func TestDecode(t *testing.T) {
	var r raw
	doc, probs := Decode([]byte("name: x\nitems:\n  - id: 1\n  - id: 2\n"), &r, allowed)
	if probs != nil || doc == nil || len(r.Items) != 2 {
		t.Fatalf("%v %v %+v", doc, probs, r)
	}
	if l := doc.Line("items", 1, "id"); l != 4 {
		t.Errorf("line %d, want 4", l)
	}
	if l := doc.Line("items", 7); l != 3 {
		t.Errorf("line of a missing index %d, want the list's, 3", l)
	}
	if f := Field("items", 1, "id"); f != "items[1].id" {
		t.Errorf("field %q", f)
	}
}

func TestDecodeProblems(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"name: x\nitems:\n  - idd: 1\n", `3: unknown field "idd" (allowed here: id)`},
		{"name: [x]\n", "1: cannot unmarshal"},
		{"name: x\n---\nname: y\n", "0: more than one YAML document"},
		{"name: 'x\n", "2: found unexpected end of stream"},
	} {
		var r raw
		doc, probs := Decode([]byte(tc.doc), &r, allowed)
		if doc != nil || len(probs) == 0 {
			t.Fatalf("%q: accepted", tc.doc)
		}
		got := ""
		for _, p := range probs {
			got += strconv.Itoa(p.Line) + ": " + p.Msg + "\n"
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%q: %s, want %q", tc.doc, got, tc.want)
		}
	}
	var r raw
	if doc, probs := Decode([]byte("# nothing\n"), &r, allowed); doc != nil || probs != nil {
		t.Error("an empty file is neither a document nor a problem")
	}
}
