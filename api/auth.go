package api

import (
	"errors"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/store"
)

const principalKey = "principal"

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
		p, err := s.deps.Store.Authenticate(c.Request().Context(), strings.TrimSpace(key))
		if errors.Is(err, store.ErrUnauthorized) {
			return errUnauthorized("invalid or revoked API key")
		}
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

// requireAdmin lets only admin keys through.
func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, ok := c.Get(principalKey).(store.Principal)
		if !ok || p.Role != "admin" {
			return errForbidden("this needs an admin API key")
		}
		return next(c)
	}
}
