package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// catalogStore is what the dataset and ontology routes need of PostgreSQL.
type catalogStore interface {
	SearchDatasets(ctx context.Context, q store.DatasetQuery) (store.DatasetPage, error)
	Dataset(ctx context.Context, cluster string, id uuid.UUID) (store.Dataset, error)
	OntologyTarget(ctx context.Context) (store.OntologyTarget, error)
	ClusterOntologies(ctx context.Context) ([]store.ClusterOntology, error)
}

// maxSearchText bounds the q of a dataset search.
const maxSearchText = 500

// DatasetSearch is the answer to GET /v1/datasets.
type DatasetSearch struct {
	Datasets []store.Dataset `json:"datasets"`
	// Total counts every match; Limit and Offset say which page this is.
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
	// Next is the URL of the next page, empty on the last one.
	Next string `json:"next,omitempty"`
}

func (s *Server) datasetStore() (catalogStore, error) {
	if s.deps.Catalog == nil {
		return nil, errors.New("datasets: no catalog store")
	}
	return s.deps.Catalog, nil
}

func (s *Server) searchDatasets(c echo.Context) error {
	cat, err := s.datasetStore()
	if err != nil {
		return err
	}
	var q store.DatasetQuery
	if q.Text, err = queryText(c, "q", maxSearchText); err != nil {
		return err
	}
	q.Text = strings.TrimSpace(q.Text)
	if q.Animal, err = queryText(c, "animal", maxTextParam); err != nil {
		return err
	}
	if q.Microscopy, err = queryText(c, "microscopy", maxTextParam); err != nil {
		return err
	}
	if q.Node, err = queryText(c, "node", maxTextParam); err != nil {
		return err
	}
	if q.Node != "" && !config.ValidName(q.Node) {
		return errBadRequest(fmt.Sprintf("node %q is not a node name", q.Node))
	}
	if q.Limit, err = queryInt(c, "limit", store.DefaultDatasetLimit, 1, store.MaxDatasetLimit); err != nil {
		return err
	}
	if q.Offset, err = queryInt(c, "offset", 0, 0, maxOffset); err != nil {
		return err
	}
	page, err := cat.SearchDatasets(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := DatasetSearch{Datasets: page.Datasets, Total: page.Total, Limit: q.Limit, Offset: q.Offset}
	if next := q.Offset + len(page.Datasets); len(page.Datasets) > 0 && next < page.Total {
		v := c.QueryParams()
		v.Set("offset", strconv.Itoa(next))
		v.Set("limit", strconv.Itoa(q.Limit))
		out.Next = s.cfg.PublicURL + "/v1/datasets?" + v.Encode()
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getDataset(c echo.Context) error {
	node, err := pathText(c, "node")
	if err != nil {
		return err
	}
	return s.dataset(c, node, c.Param("id"))
}

func (s *Server) dataset(c echo.Context, node, rawID string) error {
	cat, err := s.datasetStore()
	if err != nil {
		return err
	}
	id, err := uuid.Parse(rawID)
	if err != nil {
		return errBadRequest(fmt.Sprintf("dataset ID %.60q is not a UUID", rawID))
	}
	if !config.ValidName(node) {
		return errNotFound(fmt.Sprintf("no dataset %s on node %q", id, node))
	}
	d, err := cat.Dataset(c.Request().Context(), node, id)
	if errors.Is(err, domain.ErrNotFound) {
		return errNotFound(fmt.Sprintf("no dataset %s on node %q", id, node))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

// CatalogSyncRequest is the optional body of POST /v1/datasets/sync.
type CatalogSyncRequest struct {
	// Node limits the sync to one node (all active nodes when empty).
	Node string `json:"node"`
	// Concurrency bounds how many nodes are asked at once (default
	// SYNDB_SYNC_CONCURRENCY).
	Concurrency int `json:"concurrency"`
}

// SyncStarted is the 202 answer to POST /v1/datasets/sync and
// POST /v1/ontology/sync.
type SyncStarted struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// Version is the ontology version an ontology sync pushes.
	Version   int    `json:"version,omitempty"`
	StatusURL string `json:"status_url"`
	UIURL     string `json:"ui_url"`
	// Joined is true when a run with the same workflow ID was already going
	// and this request joined it instead of starting another.
	Joined bool `json:"joined"`
}

func (s *Server) syncConcurrency(asked int) (int, error) {
	if asked == 0 {
		asked = s.cfg.SyncConcurrency
	}
	if asked < 1 || asked > config.MaxSyncConcurrency {
		return 0, errBadRequest(fmt.Sprintf("concurrency %d is outside 1..%d", asked, config.MaxSyncConcurrency))
	}
	return asked, nil
}

func (s *Server) startCatalogSync(c echo.Context) error {
	var req CatalogSyncRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	concurrency, err := s.syncConcurrency(req.Concurrency)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var st workflows.Started
	if req.Node != "" {
		if !config.ValidName(req.Node) {
			return errBadRequest(fmt.Sprintf("node %q is not a node name", req.Node))
		}
		if cl, ok := s.deps.Registry.Snapshot().Get(req.Node); !ok || cl.Status != "active" {
			return errNotFound(fmt.Sprintf("no node %q", req.Node))
		}
		st, err = workflows.StartNodeCatalogSync(ctx, s.deps.Temporal, req.Node, false)
	} else {
		st, err = workflows.StartCatalogSync(ctx, s.deps.Temporal, workflows.CatalogSyncParams{Concurrency: concurrency})
	}
	if err != nil {
		return fmt.Errorf("start catalog sync: %w", err)
	}
	setAuditTarget(c, st.WorkflowID)
	return c.JSON(http.StatusAccepted, SyncStarted{
		WorkflowID: st.WorkflowID,
		RunID:      st.RunID,
		StatusURL:  s.cfg.PublicURL + "/v1/datasets/sync/" + url.PathEscape(st.WorkflowID),
		UIURL:      s.uiURL(st.WorkflowID, st.RunID),
		Joined:     st.Joined,
	})
}

// CatalogSyncStatus is the answer to GET /v1/datasets/sync/{workflow_id}.
type CatalogSyncStatus struct {
	RunStatus
	workflows.CatalogSyncResult
}

// catalogSyncIDRe matches the IDs of catalog syncs: on demand, scheduled
// (the schedule appends the time) and per node.
var catalogSyncIDRe = regexp.MustCompile(`^catalog-sync(-scheduled-[0-9TZ:.-]{1,40}|-node-[a-z0-9][a-z0-9-]{0,62})?$`)

func (s *Server) catalogSyncStatus(c echo.Context) error {
	id := c.Param("id")
	if !catalogSyncIDRe.MatchString(id) {
		if _, err := uuid.Parse(id); err == nil {
			// GET /v1/datasets/{node}/{dataset_id} of a node named "sync".
			return s.dataset(c, "sync", id)
		}
		return errNotFound(fmt.Sprintf("no catalog sync %q: IDs look like %s", id, workflows.CatalogSyncID))
	}
	var out CatalogSyncStatus
	st, err := s.runStatus(c.Request().Context(), id, "catalog sync", &out.CatalogSyncResult)
	if err != nil {
		return err
	}
	out.RunStatus = st
	if out.Nodes == nil {
		out.Nodes = []workflows.NodeCatalogResult{}
	}
	return c.JSON(http.StatusOK, out)
}
