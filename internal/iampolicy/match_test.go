package iampolicy

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pat, s string
		fold   bool
		want   bool
	}{
		{"", "", false, true},
		{"", "a", false, false},
		{"*", "", false, true},
		{"*", "anything", false, true},
		{"a*b", "ab", false, true},
		{"a*b", "axxb", false, true},
		{"a*b", "axxbc", false, false},
		{"a*b*c", "abbbc", false, true},
		{"?", "", false, false},
		{"?", "é", false, true},
		{"??", "é", false, false},
		{"*?", "é", false, true},
		{"?", "\xff", false, true},
		{"a?c", "abc", false, true},
		{"ABC", "abc", false, false},
		{"ABC", "abc", true, true},
		{"sts:Assume*", "STS:ASSUMEROLE", true, true},
		{"**a**", "xxaxx", false, true},
		{"*a", "aaaab", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.pat+"/"+tt.s, func(t *testing.T) {
			if got := appendPattern(nil, tt.pat, true).match(tt.s, tt.fold); got != tt.want {
				t.Errorf("%q.match(%q, %v) = %v, want %v", tt.pat, tt.s, tt.fold, got, tt.want)
			}
		})
	}
}

// FuzzPatternMatch checks the greedy matcher against the regexp package.
func FuzzPatternMatch(f *testing.F) {
	f.Add("a*b?c", "axxbyc")
	f.Add("*a*a*b", "aaaaaaa")
	f.Add("?*?", "é\xffx")
	f.Fuzz(func(t *testing.T, pat, s string) {
		if len(pat) > 64 || len(s) > 256 {
			return
		}
		var re strings.Builder
		re.WriteString(`^(?s:`)
		for i := 0; i < len(pat); i++ {
			switch pat[i] {
			case '*':
				re.WriteString(`.*`)
			case '?':
				re.WriteString(`.`)
			default:
				re.WriteString(regexp.QuoteMeta(pat[i : i+1]))
			}
		}
		re.WriteString(`)$`)
		// The regexp package reads invalid UTF-8 as U+FFFD, which would
		// then equal a literal U+FFFD: compare valid text only.
		if !utf8.ValidString(pat) || !utf8.ValidString(s) {
			return
		}
		want := regexp.MustCompile(re.String()).MatchString(s)
		if got := appendPattern(nil, pat, true).match(s, false); got != want {
			t.Fatalf("%q.match(%q) = %v, regexp %s says %v", pat, s, got, re.String(), want)
		}
	})
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "1.0", 0},
		{"-0", "0.000", 0},
		{"007", "7", 0},
		{"1.5", "1.25", 1},
		{"0.5", "0.51", -1},
		{"-1.5", "-1.25", -1},
		{"-1", "1", -1},
		{"10", "9.99", 1},
		{"123456789012345678901234567890", "123456789012345678901234567891", -1},
	}
	for _, tt := range tests {
		a, ok1 := parseDecimal(tt.a)
		b, ok2 := parseDecimal(tt.b)
		if !ok1 || !ok2 {
			t.Fatalf("parse %q %q", tt.a, tt.b)
		}
		if got := a.cmp(b); got != tt.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := b.cmp(a); got != -tt.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
	for _, bad := range []string{"", "-", ".5", "5.", "1e3", "+1", "1.2.3", "0x10", " 1", "--1"} {
		if _, ok := parseDecimal(bad); ok {
			t.Errorf("parseDecimal(%q) accepted", bad)
		}
	}
}

func TestParseDate(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	for _, s := range []string{"2026-01-02T03:04:00Z", "2026-01-02T04:04:00+01:00", "2026-01-02T03:04Z", "2026-01-02T03:04:00.000Z", "1767323040"} {
		got, ok := parseDate(s)
		if !ok || !got.Equal(want) {
			t.Errorf("parseDate(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	if got, ok := parseDate("2026-01"); !ok || !got.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parseDate(2026-01) = %v, %v", got, ok)
	}
	for _, bad := range []string{"", "tomorrow", "2026-13-01", "2026-01-02T03:04:05", "9999999999999", "2026/01/02"} {
		if _, ok := parseDate(bad); ok {
			t.Errorf("parseDate(%q) accepted", bad)
		}
	}
}
