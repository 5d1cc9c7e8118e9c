package sigv4_test

import (
	"errors"
	"testing"

	"github.com/keyless-dev/keyless/internal/sigv4"
)

// TestSpecificErrorsWrapGeneralOnes: each specific verification error is
// its general one too, and reads as "general: detail".
func TestSpecificErrorsWrapGeneralOnes(t *testing.T) {
	for _, tc := range []struct {
		err, general error
		msg          string
	}{
		{sigv4.ErrDate, sigv4.ErrMalformed, "malformed SigV4 request: bad X-Amz-Date"},
		{sigv4.ErrHeaderMissing, sigv4.ErrMalformed, "malformed SigV4 request: signed header missing"},
		{sigv4.ErrQuery, sigv4.ErrMalformed, "malformed SigV4 request: bad query string"},
		{sigv4.ErrScopeDate, sigv4.ErrScope, "credential scope mismatch: date"},
		{sigv4.ErrScopeService, sigv4.ErrScope, "credential scope mismatch: service"},
		{sigv4.ErrScopeRegion, sigv4.ErrScope, "credential scope mismatch: region"},
	} {
		if !errors.Is(tc.err, tc.general) || tc.err.Error() != tc.msg {
			t.Errorf("%q: wraps %q: %v; want the message %q", tc.err, tc.general, errors.Is(tc.err, tc.general), tc.msg)
		}
		if errors.Is(tc.general, tc.err) {
			t.Errorf("%q is %q", tc.general, tc.err)
		}
	}
}
