package bench

import (
	"math"
	"strconv"
	"strings"
)

// num writes v with three significant digits (all of its integer digits
// when it has more), grouping thousands: 6,524, 15.3, 0.0234.
func num(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	a := math.Abs(v)
	dec := 0
	if a < 100 {
		dec = 2 - int(math.Floor(math.Log10(a)))
	}
	s := strconv.FormatFloat(v, 'f', dec, 64)
	if dec > 0 && strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return group(s)
}

// group puts thousands separators into the integer part of a number.
func group(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}

// ms writes seconds as milliseconds (or seconds from 1 s up).
func ms(sec float64) string {
	if sec >= 1 {
		return num(sec) + " s"
	}
	return num(sec*1000) + " ms"
}

// ratio writes a ratio with two decimals: 1.27×.
func ratio(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "×" }

// mb writes bytes as MB (10^6 bytes).
func mb(bytes float64) string { return strconv.FormatFloat(bytes/1e6, 'f', 2, 64) + " MB" }

// verdict is PASS or MISS.
func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "**MISS**"
}

// median of a list of values (0 for none).
func median(v []float64) float64 { return Stat{Values: v}.Median() }

// statCell writes a metric's runs: the median, and the range when there
// are more runs than one.
func statCell(s *Stat) string {
	if s == nil || len(s.Values) == 0 {
		return ""
	}
	if len(s.Values) == 1 || s.Min() == s.Max() {
		return num(s.Values[0])
	}
	return num(s.Median()) + " (" + num(s.Min()) + "–" + num(s.Max()) + ")"
}
