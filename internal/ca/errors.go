package ca

import (
	"errors"
	"fmt"
	"time"

	"github.com/keyless-dev/keyless/internal/caproto"
)

// Kind classifies a refusal; the API turns it into an HTTP status (step-ca
// answers the same ones).
type Kind int

// Kinds of errors.
const (
	KindInternal       Kind = iota // 500: the CA's own failure; the cause is logged, not sent
	KindBadRequest                 // 400: malformed input
	KindUnauthorized               // 401: the token or certificate does not authenticate
	KindForbidden                  // 403: authenticated, but policy says no
	KindNotFound                   // 404
	KindNotImplemented             // 501
)

// Error is a refusal with a message safe to show the client. Reason,
// when set, tells the client what to do about it in a code it can branch
// on, and Limit is the policy bound a lifetime refusal names. Err, when
// set, is the underlying cause, for logs only. Messages describe the
// refusal; they never carry advice for one particular client (the CLI
// adds its hints from Reason).
type Error struct {
	Kind    Kind
	Reason  caproto.Reason
	Limit   time.Duration
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// because sets the refusal's reason.
func (e *Error) because(r caproto.Reason) *Error {
	e.Reason = r
	return e
}

// limit sets the reason of a refusal by a policy bound, and the bound.
func (e *Error) limit(r caproto.Reason, bound time.Duration) *Error {
	e.Reason, e.Limit = r, bound
	return e
}

func refuse(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func internal(err error, format string, args ...any) *Error {
	return &Error{Kind: KindInternal, Message: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns err's Kind, KindInternal for errors that are not *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
