package rolesanywhere

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// APIError is a refusal from the service: its HTTP status, AWS error code
// and message. The message is the server's, cleaned of control characters
// and shortened; it never holds anything keyless sent.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	RequestID  string
	Attempts   int
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("CreateSession refused (")
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	}
	b.WriteString(")")
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Throttling reports whether the code says the caller is being throttled.
func (e *APIError) Throttling() bool {
	switch e.Code {
	case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown":
		return true
	}
	return false
}

// TransportError is a failure to get any answer from the endpoint.
type TransportError struct {
	URL      string
	Attempts int
	Err      error
}

func (e *TransportError) Error() string {
	s := fmt.Sprintf("calling CreateSession at %s: %v", e.URL, e.Err)
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	return s
}

func (e *TransportError) Unwrap() error { return e.Err }

// parseAPIError reads the code from X-Amzn-ErrorType or the body's
// __type/code (dropping any namespace or trailing URL) and the message from
// message/Message.
func parseAPIError(resp *http.Response, data []byte) *APIError {
	e := &APIError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Amzn-Requestid")}
	var body struct {
		Type     string `json:"__type"`
		Code     string `json:"code"`
		CodeUC   string `json:"Code"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	_ = json.Unmarshal(data, &body)
	code := resp.Header.Get("X-Amzn-Errortype")
	for _, c := range []string{body.Type, body.Code, body.CodeUC} {
		if code == "" {
			code = c
		}
	}
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	e.Code = clean(code, 64)
	msg := body.Message
	if msg == "" {
		msg = body.MessageU
	}
	if msg == "" && e.Code == "" && len(data) > 0 && !json.Valid(data) {
		msg = string(data)
	}
	e.Message = clean(msg, 300)
	e.RequestID = clean(e.RequestID, 64)
	return e
}

// clean keeps printable characters of s, at most n runes, so a hostile
// server cannot write escape sequences to the user's terminal.
func clean(s string, n int) string {
	var b strings.Builder
	count := 0
	for _, r := range s {
		if count == n {
			b.WriteString("...")
			break
		}
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = ' '
		}
		b.WriteRune(r)
		count++
	}
	return strings.TrimSpace(b.String())
}

func truncate(s string) string { return clean(s, 64) }
