package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/store"
)

// Enrollment token lifetimes.
const (
	defaultEnrollTTL = 24 * time.Hour
	maxEnrollTTL     = 30 * 24 * time.Hour
)

// CreateClusterRequest is the body of POST /v1/federation/clusters.
type CreateClusterRequest struct {
	Name string `json:"name"`
	// TTLSeconds is how long the enrollment token is valid (default a day).
	TTLSeconds int64 `json:"ttl_seconds"`
}

func (s *Server) createCluster(c echo.Context) error {
	var req CreateClusterRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	if !config.ValidName(req.Name) {
		return errBadRequest(fmt.Sprintf("name %q must be 1-63 characters of a-z, 0-9 and '-'", req.Name))
	}
	ttl := defaultEnrollTTL
	if req.TTLSeconds != 0 {
		// Checked in seconds: a count of seconds that is valid as an int can
		// overflow time.Duration.
		if req.TTLSeconds < 1 || req.TTLSeconds > int64(maxEnrollTTL/time.Second) {
			return errBadRequest(fmt.Sprintf("ttl_seconds %d is outside 1..%d", req.TTLSeconds, int64(maxEnrollTTL/time.Second)))
		}
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	e, err := s.deps.Store.CreateCluster(c.Request().Context(), req.Name, ttl)
	if errors.Is(err, store.ErrExists) {
		return errConflict(err.Error())
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, e)
}

func (s *Server) revokeCluster(c echo.Context) error {
	name, err := pathText(c, "name")
	if err != nil {
		return err
	}
	if !config.ValidName(name) {
		return errNotFound(fmt.Sprintf("no cluster %q", name))
	}
	cl, err := s.deps.Store.RevokeCluster(c.Request().Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound(fmt.Sprintf("no cluster %q", name))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cl)
}
