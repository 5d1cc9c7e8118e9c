package sts_test

import (
	"testing"

	"github.com/keyless-dev/keyless/internal/sts"
)

// TestNewWithOptionsRefusesEmptyBundle: a CA bundle without a
// certificate is an error, not the system roots.
func TestNewWithOptionsRefusesEmptyBundle(t *testing.T) {
	if _, err := sts.NewWithOptions("https://sts.example", "us-east-1", sts.Options{RootCAs: []byte("not PEM")}); err == nil {
		t.Fatal("an empty bundle was accepted")
	}
	if _, err := sts.NewWithOptions("https://sts.example", "us-east-1", sts.Options{}); err != nil {
		t.Fatal(err)
	}
}
