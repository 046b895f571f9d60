// Package health holds the health of a registered node as the hub sees it.
//
// The states (Unknown, Healthy, Degraded, Unreachable) are the ones the
// README's "Health and circuit breaking" section describes; their string values are stored verbatim in PostgreSQL (clusters.health), so they
// must never change.
package health

import (
	"errors"
	"fmt"
)

// State is the health of one node. The zero value is not a valid State; a node
// that has not been checked yet is Unknown.
type State string

// The states a node can be in. Their values are stored in clusters.health.
const (
	// Unknown: newly registered, not yet checked. Not routable.
	Unknown State = "unknown"
	// Healthy: answers pings. Routable.
	Healthy State = "healthy"
	// Degraded: answers, but slow or partly failing. Routable at lower priority.
	Degraded State = "degraded"
	// Unreachable: failed consecutive pings. Not routable.
	Unreachable State = "unreachable"
)

// ErrInvalidState is wrapped by the error ParseState returns for a string
// that is not a State.
var ErrInvalidState = errors.New("invalid health state")

// ParseState returns the State whose value is s. Matching is exact: the values
// are stored lowercase and are not normalised.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", fmt.Errorf("%w %q: want one of %s, %s, %s, %s",
			ErrInvalidState, s, Unknown, Healthy, Degraded, Unreachable)
	}
	return st, nil
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool {
	switch s {
	case Unknown, Healthy, Degraded, Unreachable:
		return true
	}
	return false
}

// Routable reports whether work may be sent to a node in state s: Healthy and
// Degraded only.
func (s State) Routable() bool {
	switch s {
	case Healthy, Degraded:
		return true
	case Unknown, Unreachable:
		return false
	}
	return false
}
