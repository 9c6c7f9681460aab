package sip

import "fmt"

// StatusError is a failure that maps to one SIP final response.
type StatusError struct {
	Code   int
	Reason string
	// Header is an optional extra header (name, value) for the response,
	// such as Min-Expires on a 423.
	Header [2]string
}

func (e *StatusError) Error() string { return fmt.Sprintf("sip: %d %s", e.Code, e.Reason) }

func statusErr(code int, reason string) *StatusError {
	return &StatusError{Code: code, Reason: reason}
}
