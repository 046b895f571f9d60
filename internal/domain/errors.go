package domain

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnauthorized is returned for a missing, unknown or revoked API key.
var ErrUnauthorized = errors.New("unauthorized")

// ErrKeyExpired is returned for an API key past its expiry, or past the end
// of the grace period of the rotation that replaced it. It is an
// ErrUnauthorized too.
var ErrKeyExpired = fmt.Errorf("%w: expired API key", ErrUnauthorized)

// Registration refusals. The hub reports each sentinel's own text to the
// node (never the detail wrapped around it, which may name other peers),
// and the node logs it.
var (
	ErrTokenInvalid = errors.New("no valid enrollment for this name: a first registration needs the token its enrolment returned " +
		"(POST /v1/federation/clusters)")
	ErrTokenUsed    = errors.New("enrollment token has already been used")
	ErrTokenExpired = errors.New("enrollment token has expired")
	ErrExists       = errors.New("cluster already enrolled")
)
