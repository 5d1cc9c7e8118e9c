package ca

import (
	"errors"
	"fmt"
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

// Error is a refusal with a message safe to show the client. Err, when
// set, is the underlying cause, for logs only.
type Error struct {
	Kind    Kind
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
