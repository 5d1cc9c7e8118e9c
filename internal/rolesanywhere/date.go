package rolesanywhere

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ServerDate asks endpoint (unsigned: GET /sessions, which the service
// refuses, as CreateSession is a signed POST) for the time in its Date header, over a client made by
// NewHTTPClient(o), so that a caller can compare its clock with the
// service's before it signs: SigV4 refuses requests more than five
// minutes off. Any HTTP status will do; only an answer without a Date
// header, or none at all, is an error.
func ServerDate(ctx context.Context, endpoint string, o TransportOptions) (time.Time, error) {
	u, err := ParseEndpoint(endpoint)
	if err != nil {
		return time.Time{}, err
	}
	client, err := NewHTTPClient(o)
	if err != nil {
		return time.Time{}, err
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, DefaultAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String()+"/sessions", nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return time.Time{}, &TransportError{URL: u.String(), Attempts: 1, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s answered %d without a valid Date header", u, resp.StatusCode)
	}
	return date, nil
}
