package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/schemastatus"
	"github.com/syndb/federation/workflows"
)

// SchemaSyncRequest is the optional body of POST /v1/federation/schema/sync.
type SchemaSyncRequest struct {
	// TargetVersion defaults to the newest migration the hub knows.
	TargetVersion int `json:"target_version"`
	// Concurrency bounds how many nodes are synced at once (default
	// SYNDB_SYNC_CONCURRENCY).
	Concurrency int `json:"concurrency"`
}

// SchemaSyncStarted is the 202 answer to POST /v1/federation/schema/sync.
type SchemaSyncStarted struct {
	WorkflowID    string `json:"workflow_id"`
	RunID         string `json:"run_id"`
	TargetVersion int    `json:"target_version"`
	StatusURL     string `json:"status_url"`
	UIURL         string `json:"ui_url"`
	// Joined is true when a sync to the same target was already running and
	// this request joined it instead of starting another.
	Joined bool `json:"joined"`
}

func (s *Server) startSchemaSync(c echo.Context) error {
	var req SchemaSyncRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	if req.TargetVersion == 0 {
		req.TargetVersion = s.deps.SchemaHead
	}
	if req.TargetVersion < 1 || req.TargetVersion > s.deps.SchemaHead {
		return errBadRequest(fmt.Sprintf("target_version %d is outside 1..%d", req.TargetVersion, s.deps.SchemaHead))
	}
	if req.Concurrency == 0 {
		req.Concurrency = s.cfg.SyncConcurrency
	}
	if req.Concurrency < 1 || req.Concurrency > config.MaxSyncConcurrency {
		return errBadRequest(fmt.Sprintf("concurrency %d is outside 1..%d", req.Concurrency, config.MaxSyncConcurrency))
	}
	st, err := workflows.StartSchemaSync(c.Request().Context(), s.deps.Temporal,
		workflows.SchemaSyncParams{Target: req.TargetVersion, Concurrency: req.Concurrency})
	if err != nil {
		return fmt.Errorf("start schema sync: %w", err)
	}
	setAuditTarget(c, st.WorkflowID)
	return c.JSON(http.StatusAccepted, SchemaSyncStarted{
		WorkflowID:    st.WorkflowID,
		RunID:         st.RunID,
		TargetVersion: req.TargetVersion,
		StatusURL:     s.cfg.PublicURL + "/v1/federation/schema/sync/" + url.PathEscape(st.WorkflowID),
		UIURL:         s.uiURL(st.WorkflowID, st.RunID),
		Joined:        st.Joined,
	})
}

// SchemaSyncStatus is the answer to GET /v1/federation/schema/sync/{id}.
type SchemaSyncStatus struct {
	RunStatus
	workflows.SchemaSyncResult
}

// workflowIDRe matches the IDs of schema syncs (workflows.SchemaSyncID) and
// catch-ups (workflows.SchemaCatchUpID).
var workflowIDRe = regexp.MustCompile(`^schema-(sync|catchup-[a-z0-9][a-z0-9-]{0,62})-v[0-9]{1,9}$`)

func (s *Server) schemaSyncStatus(c echo.Context) error {
	id := c.Param("id")
	if !workflowIDRe.MatchString(id) {
		return errNotFound(fmt.Sprintf("no schema sync %q: IDs look like schema-sync-v3", id))
	}
	var out SchemaSyncStatus
	st, err := s.runStatus(c.Request().Context(), id, "schema sync", &out.SchemaSyncResult)
	if err != nil {
		return err
	}
	out.RunStatus = st
	return c.JSON(http.StatusOK, out)
}

func (s *Server) schemaStatus(c echo.Context) error {
	if s.deps.Warehouse == nil {
		return errors.New("schema status: no hub warehouse connection")
	}
	st, err := schemastatus.Read(c.Request().Context(), s.deps.Store, s.deps.Warehouse, s.deps.Migrations)
	if err != nil {
		return fmt.Errorf("schema status: %w", err)
	}
	return c.JSON(http.StatusOK, st)
}

// ClusterList is the answer to GET /v1/federation/clusters.
type ClusterList struct {
	Clusters []domain.Cluster `json:"clusters"`
}

func (s *Server) listClusters(c echo.Context) error {
	cs := s.deps.Registry.Snapshot().All()
	if cs == nil {
		cs = []domain.Cluster{}
	}
	return c.JSON(http.StatusOK, ClusterList{Clusters: cs})
}

func (s *Server) uiURL(workflowID, runID string) string {
	if runID == "" {
		// The UI opens the latest run.
		return fmt.Sprintf("%s/namespaces/%s/workflows/%s", strings.TrimRight(s.cfg.Temporal.UIURL, "/"),
			url.PathEscape(s.cfg.Temporal.Namespace), url.PathEscape(workflowID))
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", strings.TrimRight(s.cfg.Temporal.UIURL, "/"),
		url.PathEscape(s.cfg.Temporal.Namespace), url.PathEscape(workflowID), url.PathEscape(runID))
}

func statusName(st enumspb.WorkflowExecutionStatus) string {
	name := strings.TrimPrefix(st.String(), "WorkflowExecutionStatus")
	// enumspb names are CamelCase ("ContinuedAsNew"); the API speaks snake_case.
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// decodeJSON reads a required JSON body into v (see decodeStrict).
func decodeJSON(c echo.Context, v any) error {
	if c.Request().Body == nil || c.Request().ContentLength == 0 {
		return errBadRequest("a JSON body is required")
	}
	err := decodeStrict(c.Request().Body, v)
	if errors.Is(err, io.EOF) {
		return errBadRequest("a JSON body is required")
	}
	if tooLarge := bodyError(c, err); tooLarge != nil {
		return tooLarge
	}
	if err != nil {
		return errBadRequest("invalid JSON body: " + err.Error())
	}
	return nil
}

// decodeOptionalJSON reads a JSON body into v, if there is one: an empty
// body leaves v as it is.
func decodeOptionalJSON(c echo.Context, v any) error {
	if c.Request().Body == nil {
		return nil
	}
	err := decodeStrict(c.Request().Body, v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if tooLarge := bodyError(c, err); tooLarge != nil {
		return tooLarge
	}
	if err != nil {
		return errBadRequest("invalid JSON body: " + err.Error())
	}
	return nil
}
