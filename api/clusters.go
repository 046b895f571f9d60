package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
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
	// DataHost, when set, is a host (IP address or DNS name, no port) the
	// node's data addresses may be on besides the host its connection
	// comes from: needed for a node behind a relay, or whose ClickHouse
	// runs on another machine than its agent.
	DataHost string `json:"data_host"`
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
	setAuditTarget(c, req.Name)
	if req.DataHost != "" && !validDataHost(req.DataHost) {
		return errBadRequest(fmt.Sprintf("data_host %q must be an IP address or a DNS name, without a port", req.DataHost))
	}
	e, err := s.deps.Store.CreateCluster(c.Request().Context(), req.Name, ttl, req.DataHost)
	if errors.Is(err, domain.ErrExists) {
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
	if errors.Is(err, domain.ErrNotFound) {
		return errNotFound(fmt.Sprintf("no cluster %q", name))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, cl)
}

// hostLabel is one label of a DNS name.
var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// validDataHost reports whether h is an IP address or a DNS name.
func validDataHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}
