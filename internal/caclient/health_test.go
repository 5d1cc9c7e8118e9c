package caclient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/ca/catest"
	"github.com/keyless-dev/keyless/internal/caclient"
	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// TestHealth: the CA answers with its Date over TLS that verifies with
// the pinned root; a client pinning another root is refused before any
// answer is read.
func TestHealth(t *testing.T) {
	c := catest.Start(t, catest.Options{})
	before := time.Now().Add(-time.Second)
	date, err := c.Client(t).Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if date.Before(before.Truncate(time.Second)) || date.After(time.Now().Add(time.Second)) {
		t.Errorf("Date %s is not the CA's now", date)
	}

	other, err := caclient.New(c.URL, pkitest.NewRoot(t, "impostor").Cert, caclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.CloseIdleConnections()
	if _, err := other.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("with another root: %v; want a TLS refusal", err)
	}
}
