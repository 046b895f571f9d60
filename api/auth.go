package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

const principalKey = "principal"

// keyAuthenticator turns an API key into its principal: the API process's
// cache (internal/keyauth), or the store itself.
type keyAuthenticator interface {
	Authenticate(ctx context.Context, key string) (store.Principal, error)
}

// keys is Deps.Keys, or the store when there is none.
func (s *Server) keys() keyAuthenticator {
	if s.deps.Keys != nil {
		return s.deps.Keys
	}
	return s.deps.Store
}

// authenticate requires "Authorization: Bearer <API key>" on every /v1 route.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, key, ok := strings.Cut(h, " ")
		if h == "" {
			return errUnauthorized("missing API key: send Authorization: Bearer <key>")
		}
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
			return errUnauthorized("malformed Authorization header: want Bearer <key>")
		}
		p, wait, err := s.checkKey(c.Request().Context(), c.RealIP(), strings.TrimSpace(key))
		if wait > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
			return err
		}
		if errors.Is(err, domain.ErrKeyExpired) {
			return errUnauthorized("expired API key")
		}
		if errors.Is(err, domain.ErrUnauthorized) {
			return errUnauthorized("invalid or revoked API key")
		}
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

// checkKey authenticates key, presented from the client address client.
// A refused key (unknown, revoked, expired) takes a token from the
// client's budget of refusals; a client with none left gets, before its
// key is looked up, the too_many_refused_keys error and how long until it
// has one (wait > 0).
func (s *Server) checkKey(ctx context.Context, client, key string) (p store.Principal, wait time.Duration, err error) {
	if wait := s.refusals.wait(client, time.Now()); wait > 0 {
		return store.Principal{}, wait, errTooManyRefused(wait)
	}
	p, err = s.keys().Authenticate(ctx, key)
	if errors.Is(err, domain.ErrKeyExpired) || errors.Is(err, domain.ErrUnauthorized) {
		s.refusals.allow(client, time.Now())
	}
	return p, 0, err
}

// principal is the caller authenticated on c.
func principal(c echo.Context) (store.Principal, bool) {
	p, ok := c.Get(principalKey).(store.Principal)
	return p, ok
}

// requireRole lets through keys whose role is least or above it (see
// store.Roles); the others get a 403.
func requireRole(least string) echo.MiddlewareFunc {
	need := store.RoleRank(least)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, ok := principal(c)
			if !ok || store.RoleRank(p.Role) < need {
				return errForbidden(fmt.Sprintf("%s %s needs the %s role or above; this key's role is %s",
					c.Request().Method, c.Path(), least, p.Role))
			}
			return next(c)
		}
	}
}
