package caproto

import (
	"fmt"
	"net/url"
	"time"
)

// ListFilter narrows the certificate list (GET PathList). The zero value
// lists every certificate, oldest first. With NotAfterTo set, the list
// holds only the certificates whose notAfter is within [NotAfterFrom,
// NotAfterTo], soonest first: what keyless ca list --expiring asks for,
// which the CA answers from an index rather than by reading every
// certificate. A CA that does not know the filter lists everything, so a
// client filters what it receives too.
type ListFilter struct {
	NotAfterFrom, NotAfterTo time.Time
}

// Query parameters of ListFilter, RFC 3339 times.
const (
	queryNotAfterFrom = "notAfterFrom"
	queryNotAfterTo   = "notAfterTo"
)

// Bounded reports whether f selects by notAfter.
func (f ListFilter) Bounded() bool { return !f.NotAfterTo.IsZero() }

// Bounds returns the notAfter range of a bounded filter.
func (f ListFilter) Bounds() (from, to time.Time) { return f.NotAfterFrom, f.NotAfterTo }

// Query returns f as query parameters (none for the zero filter).
func (f ListFilter) Query() url.Values {
	q := url.Values{}
	if f.Bounded() {
		q.Set(queryNotAfterFrom, f.NotAfterFrom.UTC().Format(time.RFC3339Nano))
		q.Set(queryNotAfterTo, f.NotAfterTo.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// ParseListFilter reads the filter from query parameters: both bounds or
// neither.
func ParseListFilter(q url.Values) (ListFilter, error) {
	from, to := q.Get(queryNotAfterFrom), q.Get(queryNotAfterTo)
	if from == "" && to == "" {
		return ListFilter{}, nil
	}
	var f ListFilter
	var err error
	if f.NotAfterFrom, err = time.Parse(time.RFC3339Nano, from); err != nil {
		return ListFilter{}, fmt.Errorf("query parameter %s: %q is not an RFC 3339 time (both %s and %s are needed)", queryNotAfterFrom, clipQuery(from), queryNotAfterFrom, queryNotAfterTo)
	}
	if f.NotAfterTo, err = time.Parse(time.RFC3339Nano, to); err != nil {
		return ListFilter{}, fmt.Errorf("query parameter %s: %q is not an RFC 3339 time (both %s and %s are needed)", queryNotAfterTo, clipQuery(to), queryNotAfterFrom, queryNotAfterTo)
	}
	return f, nil
}

func clipQuery(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
