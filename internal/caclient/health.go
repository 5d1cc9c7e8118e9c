package caclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Health asks the CA's /health over TLS verified with the pinned root,
// and returns the time the CA's Date header says (zero when it sent
// none), so a caller can tell how far its clock is from the CA's.
func (c *Client) Health(ctx context.Context) (time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/health", nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("calling the CA's /health: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, &APIError{Op: "answer /health", Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	}
	date, _ := http.ParseTime(resp.Header.Get("Date"))
	return date, nil
}
