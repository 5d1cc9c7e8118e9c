package caclient

import "testing"

// FuzzParseIssued: a CA's answer to sign or renew, whatever it holds,
// parses to certificates or to an error, never a panic or an empty leaf.
func FuzzParseIssued(f *testing.F) {
	f.Add([]byte(`{"crt":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","ca":"","certChain":[]}`))
	f.Add([]byte(`{"certChain":["", "x"]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseIssued(data)
		if err == nil && (certs == nil || certs.Leaf == nil) {
			t.Fatal("parsed without a leaf")
		}
	})
}
