package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// keyStore is what key management needs of PostgreSQL.
type keyStore interface {
	NewAPIKey(ctx context.Context, account, name, role string) (string, store.APIKey, error)
	APIKeys(ctx context.Context) ([]store.APIKey, error)
	RevokeAPIKey(ctx context.Context, id int64) (store.APIKey, error)
}

// CreateKeyRequest is the body of POST /v1/apikeys.
type CreateKeyRequest struct {
	Name string `json:"name"`
	// Account owns the key (created when missing; default "default").
	Account string `json:"account"`
	// Role is reader, operator or admin (default reader).
	Role string `json:"role"`
}

// CreatedKey is the 201 answer to POST /v1/apikeys: the key, shown once.
type CreatedKey struct {
	Key string `json:"key"`
	store.APIKey
}

// KeyList is the answer to GET /v1/apikeys.
type KeyList struct {
	Keys []store.APIKey `json:"keys"`
}

func (s *Server) keyStore() (keyStore, error) {
	ks, ok := s.deps.Store.(keyStore)
	if !ok {
		return nil, errors.New("api keys: the store cannot manage keys")
	}
	return ks, nil
}

func (s *Server) createKey(c echo.Context) error {
	ks, err := s.keyStore()
	if err != nil {
		return err
	}
	var req CreateKeyRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Account == "" {
		req.Account = "default"
	}
	if req.Role == "" {
		req.Role = store.RoleReader
	}
	if strings.TrimSpace(req.Name) == "" {
		return errBadRequest("name is required")
	}
	for _, f := range []struct{ name, v string }{{"name", req.Name}, {"account", req.Account}} {
		if err := checkText(f.name, f.v, maxTextParam); err != nil {
			return err
		}
	}
	if store.RoleRank(req.Role) == 0 {
		return errBadRequest(fmt.Sprintf("role %q: use one of %s", req.Role, strings.Join(store.Roles, ", ")))
	}
	key, rec, err := ks.NewAPIKey(c.Request().Context(), req.Account, req.Name, req.Role)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, CreatedKey{Key: key, APIKey: rec})
}

func (s *Server) listKeys(c echo.Context) error {
	ks, err := s.keyStore()
	if err != nil {
		return err
	}
	keys, err := ks.APIKeys(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, KeyList{Keys: keys})
}

func (s *Server) revokeKey(c echo.Context) error {
	ks, err := s.keyStore()
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return errNotFound(fmt.Sprintf("no api key %.40q", c.Param("id")))
	}
	k, err := ks.RevokeAPIKey(c.Request().Context(), id)
	if errors.Is(err, domain.ErrNotFound) {
		return errNotFound(fmt.Sprintf("no api key %d", id))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, k)
}
