package emulator_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rulesSection is the heading of docs/emulator.md's table of AWS's rules.
const rulesSection = "## AWS's rules, one by one"

// TestRulesTableNamesRealTests keeps docs/emulator.md's rules table
// honest: every row names an AWS source and at least one test, and every
// test it names exists (with its subtest name, when it gives one), so a
// renamed or deleted test cannot leave a rule documented as proven.
func TestRulesTableNamesRealTests(t *testing.T) {
	root := filepath.Join("..", "..")
	f, err := os.Open(filepath.Join(root, "docs", "emulator.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// The section holds one table per subject (### headings); each
	// table's first row is its header.
	var rows [][]string
	in, tables := false, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == rulesSection
		case !in || !strings.HasPrefix(line, "|"):
		case strings.HasPrefix(line, "|---"):
			tables++
			if len(rows) == 0 {
				t.Fatalf("docs/emulator.md rules table %d: a separator row with no header above it", tables)
			}
			header := rows[len(rows)-1]
			rows = rows[:len(rows)-1]
			if len(header) != 4 {
				t.Errorf("docs/emulator.md rules table %d: header %q, want 4 columns (rule, AWS source, emulator, test)", tables, header)
			}
		default:
			rows = append(rows, splitRow(line))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if tables == 0 || len(rows) == 0 {
		t.Fatalf("docs/emulator.md: no table under %q", rulesSection)
	}
	sources := map[string]string{}
	testRef := regexp.MustCompile("`((?:internal|interop)/[a-z0-9/_-]+)` `(Test[A-Za-z0-9_]+)(?:/([^`]+))?`")
	for _, row := range rows {
		if len(row) != 4 {
			t.Errorf("row %q: %d columns, want 4", row, len(row))
			continue
		}
		if strings.TrimSpace(row[1]) == "" {
			t.Errorf("row %q names no AWS source", row[0])
		}
		refs := testRef.FindAllStringSubmatch(row[3], -1)
		if len(refs) == 0 {
			t.Errorf("row %q names no test as `dir` `TestName[/subtest]`", row[0])
		}
		for _, ref := range refs {
			dir, name, sub := ref[1], ref[2], ref[3]
			src, ok := sources[dir]
			if !ok {
				src = testSources(t, filepath.Join(root, dir))
				sources[dir] = src
			}
			if !strings.Contains(src, "func "+name+"(") {
				t.Errorf("row %q: no func %s in %s/*_test.go", row[0], name, dir)
				continue
			}
			if sub != "" && !strings.Contains(src, `"`+sub+`"`) && !strings.Contains(src, `"`+strings.ReplaceAll(sub, "_", " ")+`"`) {
				t.Errorf("row %q: no subtest %q in %s/*_test.go", row[0], sub, dir)
			}
		}
	}
}

// splitRow splits a Markdown table row into its cells, keeping pipes
// inside backticks.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(strings.TrimSuffix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	code := false
	for _, r := range line {
		switch {
		case r == '`':
			code = !code
			cur.WriteRune(r)
		case r == '|' && !code:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// testSources returns the text of every _test.go file in dir.
func testSources(t *testing.T, dir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s", dir)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}
