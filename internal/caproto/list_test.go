package caproto_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/caproto"
)

// TestParseListFilter: both bounds or neither; one bound alone, or a
// bound that is not an RFC 3339 time, is an error naming the parameter.
// A filter survives its own query.
func TestParseListFilter(t *testing.T) {
	from := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	f := caproto.ListFilter{NotAfterFrom: from, NotAfterTo: from.Add(24 * time.Hour)}
	got, err := caproto.ParseListFilter(f.Query())
	if err != nil || !got.NotAfterFrom.Equal(f.NotAfterFrom) || !got.NotAfterTo.Equal(f.NotAfterTo) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if got, err := caproto.ParseListFilter(url.Values{}); err != nil || got.Bounded() {
		t.Fatalf("no parameters: %+v, %v", got, err)
	}
	for name, q := range map[string]url.Values{
		"only notAfterTo":   {"notAfterTo": {"2026-11-28T00:00:00Z"}},
		"only notAfterFrom": {"notAfterFrom": {"2026-11-27T00:00:00Z"}},
		"not a time":        {"notAfterFrom": {"yesterday"}, "notAfterTo": {"2026-11-28T00:00:00Z"}},
	} {
		_, err := caproto.ParseListFilter(q)
		if err == nil || !strings.Contains(err.Error(), "notAfter") {
			t.Errorf("%s: error %v, want one naming the parameter", name, err)
		}
	}
}
