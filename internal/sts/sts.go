// Package sts is keyless's client of AWS STS: GetCallerIdentity, signed
// with standard SigV4 (internal/sigv4), to check that credentials work
// and say whose they are. keyless dev checks its chain with it; keyless
// doctor will too. It is a transport; it links no AWS SDK (the interop
// modules check the SDK against the same emulator).
package sts

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/sigv4"
)

// Identity is GetCallerIdentity's answer.
type Identity struct {
	Arn     string `xml:"GetCallerIdentityResult>Arn"`
	UserID  string `xml:"GetCallerIdentityResult>UserId"`
	Account string `xml:"GetCallerIdentityResult>Account"`
}

// APIError is STS's refusal.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("STS GetCallerIdentity refused (%d %s): %s", e.Status, e.Code, e.Message)
}

// Client calls one STS endpoint.
type Client struct {
	// Endpoint is the base URL, such as https://sts.us-east-1.amazonaws.com.
	Endpoint string
	// Region is the signing region.
	Region string
	// Now is the signing clock; nil means time.Now.
	Now  func() time.Time
	http *http.Client
}

// New returns a client for endpoint, signing for region.
func New(endpoint, region string) *Client {
	return &Client{Endpoint: strings.TrimSuffix(endpoint, "/"), Region: region,
		http: &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// GetCallerIdentity asks who c is.
func (cl *Client) GetCallerIdentity(ctx context.Context, c sigv4.Credentials) (*Identity, error) {
	const body = "Action=GetCallerIdentity&Version=2011-06-15"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.Endpoint+"/", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	now := time.Now
	if cl.Now != nil {
		now = cl.Now
	}
	if err := sigv4.SignHMAC(req, []byte(body), c, cl.Region, "sts", now()); err != nil {
		return nil, fmt.Errorf("signing GetCallerIdentity: %w", err)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("STS GetCallerIdentity: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("STS GetCallerIdentity: reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code    string `xml:"Error>Code"`
			Message string `xml:"Error>Message"`
		}
		if xml.Unmarshal(data, &e) != nil || e.Code == "" {
			return nil, &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("%.200q", data)}
		}
		return nil, &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	var id Identity
	if err := xml.Unmarshal(data, &id); err != nil || id.Arn == "" {
		return nil, fmt.Errorf("STS GetCallerIdentity answered %d with %.200q", resp.StatusCode, data)
	}
	return &id, nil
}
