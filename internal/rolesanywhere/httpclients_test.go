package rolesanywhere

import (
	"testing"

	"github.com/keyless-dev/keyless/internal/pki"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestHTTPClientsByContent: the same transport options share a client; a
// different CA bundle (or TLS or proxy setting) gets its own, so
// credentials are never fetched over a connection trusted by other roots.
func TestHTTPClientsByContent(t *testing.T) {
	a := pki.EncodeCertificates(pkitest.NewRoot(t, "roots-a").Cert)
	b := pki.EncodeCertificates(pkitest.NewRoot(t, "roots-b").Cert)
	var h HTTPClients
	get := func(o TransportOptions) any {
		t.Helper()
		c, err := h.Client(o)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := get(TransportOptions{RootCAs: a})
	if again := get(TransportOptions{RootCAs: append([]byte(nil), a...)}); again != first {
		t.Error("the same bundle got another client")
	}
	for name, o := range map[string]TransportOptions{
		"another bundle":  {RootCAs: b},
		"system roots":    {},
		"no verification": {RootCAs: a, InsecureSkipVerify: true},
		"proxy":           {RootCAs: a, UseProxy: true},
	} {
		if get(o) == first {
			t.Errorf("%s shares the first bundle's client", name)
		}
	}
	if _, err := h.Client(TransportOptions{RootCAs: []byte("not PEM")}); err != ErrNoCertificates {
		t.Errorf("a bundle without certificates: %v", err)
	}
	for i := range maxHTTPClients + 1 {
		get(TransportOptions{RootCAs: pki.EncodeCertificates(pkitest.NewRoot(t, "roots-"+string(rune('c'+i))).Cert)})
	}
	if n := len(h.clients); n > maxHTTPClients {
		t.Errorf("%d clients kept, want at most %d", n, maxHTTPClients)
	}
}
