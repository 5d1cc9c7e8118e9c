package cabench

import (
	"os"
	"strings"
	"testing"

	"github.com/smallstep/certificates/api"
)

// TestVerifyRefusesForeignCertificate: a certificate that does not chain
// to the server's root fails the run.
func TestVerifyRefusesForeignCertificate(t *testing.T) {
	rootKey, root, err := NewCACert("root", nil, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, inter, err := NewCACert("inter", root, rootKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := NewCACert("other", nil, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Name: "test", Root: root, Intermediate: inter}
	resp := &api.SignResponse{ServerPEM: api.Certificate{Certificate: other}}
	if err := s.verify([]*api.SignResponse{resp}); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Fatalf("verify of a foreign certificate: %v, want a chain error", err)
	}
	if err := s.verify([]*api.SignResponse{{}}); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Fatalf("verify of an answer without a certificate: %v", err)
	}
}

// TestProcessCPU reads this process's CPU time and resident set.
func TestProcessCPU(t *testing.T) {
	tck, err := clkTck()
	if err != nil || tck <= 0 {
		t.Fatalf("clock ticks %d, %v", tck, err)
	}
	if _, err := processCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if rss, err := processRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("rss %d, %v", rss, err)
	}
}
