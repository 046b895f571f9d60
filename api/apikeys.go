package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// keyStore is what key management needs of PostgreSQL.
type keyStore interface {
	NewAPIKey(ctx context.Context, spec store.KeySpec) (string, store.APIKey, error)
	APIKeys(ctx context.Context) ([]store.APIKey, error)
	RevokeAPIKey(ctx context.Context, id int64) (store.APIKey, error)
	RotateAPIKey(ctx context.Context, id int64, grace time.Duration, by string) (string, store.APIKey, store.APIKey, error)
}

// CreateKeyRequest is the body of POST /v1/apikeys.
type CreateKeyRequest struct {
	Name string `json:"name"`
	// Account owns the key (created when missing; default "default").
	Account string `json:"account"`
	// Role is reader, operator or admin (default reader).
	Role string `json:"role"`
	// TTLSeconds is how long the key lives (default: it does not expire).
	TTLSeconds int64 `json:"ttl_seconds"`
}

// RotateKeyRequest is the body of POST /v1/apikeys/{id}/rotate.
type RotateKeyRequest struct {
	// GraceSeconds is how long the old key stays valid (default a day; 0:
	// it is refused at once).
	GraceSeconds *int64 `json:"grace_seconds"`
}

// CreatedKey is the 201 answer to POST /v1/apikeys: the key, shown once.
type CreatedKey struct {
	Key string `json:"key"`
	store.APIKey
}

// RotatedKey is the 201 answer to POST /v1/apikeys/{id}/rotate: the new
// key, shown once, its record, and the old key's record.
type RotatedKey struct {
	CreatedKey
	Replaces store.APIKey `json:"replaces"`
}

// KeyList is the answer to GET /v1/apikeys.
type KeyList struct {
	Keys []store.APIKey `json:"keys"`
}

// keyForgetter is an authenticator that caches keys (internal/keyauth):
// told of a revocation or rotation made here, it drops the key at once,
// before PostgreSQL's notification comes back.
type keyForgetter interface {
	Forget(id int64)
}

// forgetKey drops key id from the authenticator's cache, if it has one.
func (s *Server) forgetKey(id int64) {
	if f, ok := s.keys().(keyForgetter); ok {
		f.Forget(id)
	}
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
	lo, hi := int64(config.MinKeyTTL/time.Second), int64(config.MaxKeyTTL/time.Second)
	if req.TTLSeconds != 0 && (req.TTLSeconds < lo || req.TTLSeconds > hi) {
		return errBadRequest(fmt.Sprintf("ttl_seconds %d is outside %d..%d (leave it out for a key that does not expire)",
			req.TTLSeconds, lo, hi))
	}
	p, _ := principal(c)
	key, rec, err := ks.NewAPIKey(c.Request().Context(), store.KeySpec{Account: req.Account, Name: req.Name, Role: req.Role,
		TTL: time.Duration(req.TTLSeconds) * time.Second, CreatedBy: store.CreatedByKey(p)})
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

// keyID is the {id} of a key route; anything but a positive number is a 404.
func keyID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errNotFound(fmt.Sprintf("no api key %.40q", c.Param("id")))
	}
	return id, nil
}

func (s *Server) revokeKey(c echo.Context) error {
	ks, err := s.keyStore()
	if err != nil {
		return err
	}
	id, err := keyID(c)
	if err != nil {
		return err
	}
	k, err := ks.RevokeAPIKey(c.Request().Context(), id)
	if errors.Is(err, domain.ErrNotFound) {
		return errNotFound(fmt.Sprintf("no api key %d", id))
	}
	if err != nil {
		return err
	}
	s.forgetKey(id)
	return c.JSON(http.StatusOK, k)
}

func (s *Server) rotateKey(c echo.Context) error {
	ks, err := s.keyStore()
	if err != nil {
		return err
	}
	id, err := keyID(c)
	if err != nil {
		return err
	}
	var req RotateKeyRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	grace := store.DefaultRotationGrace
	if req.GraceSeconds != nil {
		hi := int64(config.MaxRotationGrace / time.Second)
		if *req.GraceSeconds < 0 || *req.GraceSeconds > hi {
			return errBadRequest(fmt.Sprintf("grace_seconds %d is outside 0..%d", *req.GraceSeconds, hi))
		}
		grace = time.Duration(*req.GraceSeconds) * time.Second
	}
	p, _ := principal(c)
	key, rec, old, err := ks.RotateAPIKey(c.Request().Context(), id, grace, store.CreatedByKey(p))
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return errNotFound(fmt.Sprintf("no api key %d", id))
	case errors.Is(err, store.ErrNotRotatable):
		return errConflict(err.Error())
	case err != nil:
		return err
	}
	s.forgetKey(id)
	return c.JSON(http.StatusCreated, RotatedKey{CreatedKey: CreatedKey{Key: key, APIKey: rec}, Replaces: old})
}
