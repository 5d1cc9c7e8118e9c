// Command nethttp is issue 16's start-up baseline: a static Go program
// (scripts/bench builds it with CGO_ENABLED=0) that only links net/http
// and crypto/x509, as any HTTPS client must, and prints a line. Their
// package initialisation runs; nothing else does.
package main

import (
	"crypto/x509"
	"fmt"
	"net/http"
)

var (
	_ = http.Get
	_ = x509.ParseCertificate
)

func main() { fmt.Println("hi") }
