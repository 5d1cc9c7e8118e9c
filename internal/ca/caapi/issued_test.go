package caapi

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	"github.com/keyless-dev/keyless/internal/ca"
)

// TestIssuedJSON: the answer writeIssued makes by hand is byte for byte
// what writeJSON makes of issuedResponse, for certificates of every
// length around PEM's line and base64's block boundaries, with the
// intermediate's cached encoding and without it.
func TestIssuedJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	der := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	inter := &x509.Certificate{Raw: der(700)}
	h := &Handler{}
	h.intermediate.der, h.intermediate.json = inter.Raw, appendPEMString(nil, inter.Raw)
	for n := range 600 {
		leaf := &x509.Certificate{Raw: der(n)}
		other := &x509.Certificate{Raw: der(n / 2)}
		for _, iss := range []*ca.Issued{
			{Certificate: leaf, Intermediates: []*x509.Certificate{inter}},
			{Certificate: leaf, Intermediates: []*x509.Certificate{other}},
			{Certificate: leaf, Intermediates: []*x509.Certificate{other, inter}},
		} {
			want := httptest.NewRecorder()
			writeJSON(want, 201, issuedResponse(iss))
			got := httptest.NewRecorder()
			h.writeIssued(got, iss)
			if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) || got.Code != want.Code ||
				got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
				t.Fatalf("leaf of %d bytes, %d intermediates:\ngot  %d %q\nwant %d %q", n, len(iss.Intermediates),
					got.Code, got.Body.Bytes(), want.Code, want.Body.Bytes())
			}
			if !json.Valid(got.Body.Bytes()) {
				t.Fatal("not JSON")
			}
		}
	}
}
