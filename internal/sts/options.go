package sts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Options shape the connections of a client made by NewWithOptions, as
// the AWS SDKs shape them for every service: the roots of AWS_CA_BUNDLE,
// and the proxy.
type Options struct {
	// RootCAs, when set, is a PEM bundle that replaces the system roots.
	RootCAs []byte
	// InsecureSkipVerify turns off TLS certificate verification.
	InsecureSkipVerify bool
	// UseProxy sends requests through HTTPS_PROXY/HTTP_PROXY.
	UseProxy bool
}

// NewWithOptions returns a client for endpoint, signing for region,
// whose connections follow o.
func NewWithOptions(endpoint, region string, o Options) (*Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // the caller's choice, as --no-verify-ssl
	if len(o.RootCAs) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.RootCAs) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	if o.UseProxy {
		tr.Proxy = http.ProxyFromEnvironment
	}
	return &Client{Endpoint: strings.TrimSuffix(endpoint, "/"), Region: region,
		http: &http.Client{Timeout: 30 * time.Second, Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}
