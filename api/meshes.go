package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// meshURLTTL is how long a mesh upload or download URL is valid.
const meshURLTTL = 10 * time.Minute

// meshRecords reads the meshes the hub recorded.
type meshRecords interface {
	Mesh(ctx context.Context, node string, dataset uuid.UUID, table string, cid uuid.UUID) (store.Mesh, error)
}

// MeshUploadRequest is the body of POST /v1/datasets/{node}/{dataset_id}/meshes.
type MeshUploadRequest struct {
	Table string `json:"table"`
	CID   string `json:"cid"`
	// Format is the file's: glb (the default, and the only one read).
	Format string `json:"format"`
}

// MeshUpload is the answer to POST /v1/datasets/{node}/{dataset_id}/meshes:
// POST the file to URL as a multipart form (Fields, then the file as the
// field "file"; S3 refuses one over MaxBytes), then POST IngestURL to
// validate and measure it; StatusURL follows the ingest. Location is where
// the mesh is kept once ingested.
type MeshUpload struct {
	Object    string            `json:"object"`
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Fields    map[string]string `json:"fields"`
	MaxBytes  int64             `json:"max_bytes"`
	ExpiresAt time.Time         `json:"expires_at"`
	Location  string            `json:"location"`
	IngestURL string            `json:"ingest_url"`
	StatusURL string            `json:"status_url"`
	MeshURL   string            `json:"mesh_url"`
}

// MeshLink is the answer to GET /v1/datasets/{node}/{dataset_id}/meshes/{table}/{cid}.
type MeshLink struct {
	Location  string    `json:"location"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	Bytes     int64     `json:"bytes"`
	// Metrics and IngestedAt are the hub's record of the mesh, when it
	// holds one.
	Metrics    *domain.MeshMetrics `json:"metrics,omitempty"`
	IngestedAt *time.Time          `json:"ingested_at,omitempty"`
}

// MeshIngestStatus is the answer to GET …/meshes/{table}/{cid}/ingest.
type MeshIngestStatus struct {
	RunStatus
	domain.MeshIngestResult
	// Reason is why a failed ingest failed: its innermost error's message
	// (Error has the whole chain).
	Reason string `json:"reason,omitempty"`
}

// meshSpec checks a mesh's compartment: a node in the registry, a dataset
// of its catalog with rows in table, a compartment table with the mesh
// columns, a cid that is a UUID and a format the hub reads.
func (s *Server) meshSpec(c echo.Context, table, cid, format string) (domain.MeshSpec, error) {
	node, err := pathText(c, "node")
	if err != nil {
		return domain.MeshSpec{}, err
	}
	if cl, ok := s.deps.Registry.Snapshot().Get(node); !config.ValidName(node) || !ok || cl.Status != "active" {
		return domain.MeshSpec{}, errNotFound(fmt.Sprintf("no node %q", node))
	}
	if format == "" {
		format = domain.MeshFormatGLB
	}
	spec := domain.MeshSpec{Node: node, DatasetID: c.Param("id"), Table: table, CID: cid, Format: format}
	if err := spec.Validate(); err != nil {
		return spec, errBadRequest(err.Error())
	}
	spec = spec.Normalize()
	if !s.meshTable(table) {
		return spec, errBadRequest(fmt.Sprintf("table %q holds no meshes: the tables with mesh columns are %s", table,
			strings.Join(s.meshTables(), ", ")))
	}
	cat, err := s.datasetStore()
	if err != nil {
		return spec, err
	}
	d, err := cat.Dataset(c.Request().Context(), node, uuid.MustParse(spec.DatasetID))
	if errors.Is(err, domain.ErrNotFound) {
		return spec, errNotFound(fmt.Sprintf("no dataset %s on node %q (POST /v1/datasets/sync refreshes the catalog)", spec.DatasetID, node))
	}
	if err != nil {
		return spec, err
	}
	if !slices.ContainsFunc(d.Tables, func(t store.TableRows) bool { return t.Table == table && t.Rows > 0 }) {
		return spec, errNotFound(fmt.Sprintf("dataset %s on %s has no %s rows", spec.DatasetID, node, table))
	}
	return spec, nil
}

// meshTable says whether table is a compartment table with every mesh
// column.
func (s *Server) meshTable(table string) bool {
	cols, ok := s.types[table]
	if !ok || table == "datasets" || cols["cid"] == "" || cols["dataset_id"] == "" {
		return false
	}
	for _, m := range domain.MeshColumns {
		if cols[m] == "" {
			return false
		}
	}
	return true
}

func (s *Server) meshTables() []string {
	var out []string
	for t := range s.types {
		if s.meshTable(t) {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// meshURL is the API URL of a mesh, with suffix appended.
func (s *Server) meshURL(spec domain.MeshSpec, suffix string) string {
	return fmt.Sprintf("%s/v1/datasets/%s/%s/meshes/%s/%s%s", s.cfg.PublicURL, url.PathEscape(spec.Node), spec.DatasetID,
		spec.Table, spec.CID, suffix)
}

func (s *Server) createMeshUpload(c echo.Context) error {
	var req MeshUploadRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	spec, err := s.meshSpec(c, req.Table, req.CID, req.Format)
	if err != nil {
		return err
	}
	object := spec.StagedKey()
	setAuditTarget(c, object)
	expires := time.Now().Add(meshURLTTL).UTC()
	u, fields, err := s.presignStagedPost(c.Request().Context(), object, expires, 1, s.cfg.Mesh.MaxUploadBytes)
	if err != nil {
		return fmt.Errorf("mesh upload: %w", err)
	}
	return c.JSON(http.StatusCreated, MeshUpload{Object: object, URL: u.String(), Method: http.MethodPost, Fields: fields,
		MaxBytes: s.cfg.Mesh.MaxUploadBytes, ExpiresAt: expires, Location: domain.MeshLocation(s.cfg.S3.MeshesBucket, spec.Key()),
		IngestURL: s.meshURL(spec, "/ingest"), StatusURL: s.meshURL(spec, "/ingest"), MeshURL: s.meshURL(spec, "")})
}

// MeshIngestRequest is the optional body of POST …/meshes/{table}/{cid}/ingest.
type MeshIngestRequest struct {
	Format string `json:"format"`
}

func (s *Server) startMeshIngest(c echo.Context) error {
	var req MeshIngestRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	spec, err := s.meshSpec(c, c.Param("table"), c.Param("cid"), req.Format)
	if err != nil {
		return err
	}
	st, err := workflows.StartMeshIngest(c.Request().Context(), s.deps.Temporal, spec)
	if err != nil {
		return fmt.Errorf("start mesh ingest: %w", err)
	}
	setAuditTarget(c, st.WorkflowID)
	return c.JSON(http.StatusAccepted, SyncStarted{WorkflowID: st.WorkflowID, RunID: st.RunID,
		StatusURL: s.meshURL(spec, "/ingest"), UIURL: s.uiURL(st.WorkflowID, st.RunID), Joined: st.Joined})
}

func (s *Server) meshIngestStatus(c echo.Context) error {
	spec, err := s.meshSpec(c, c.Param("table"), c.Param("cid"), "")
	if err != nil {
		return err
	}
	var out MeshIngestStatus
	st, err := s.runStatus(c.Request().Context(), workflows.MeshIngestID(spec), "mesh ingest", &out.MeshIngestResult)
	if err != nil {
		return err
	}
	out.RunStatus = st
	if st.Error != "" {
		err := s.deps.Temporal.GetWorkflow(c.Request().Context(), st.WorkflowID, st.RunID).Get(c.Request().Context(), nil)
		out.Reason = innermostReason(err)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getMesh(c echo.Context) error {
	spec, err := s.meshSpec(c, c.Param("table"), c.Param("cid"), "")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	info, err := s.deps.Objects.StatObject(ctx, s.cfg.S3.MeshesBucket, spec.Key(), minio.StatObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return errNotFound(fmt.Sprintf("no mesh of %s %s in dataset %s on %s", spec.Table, spec.CID, spec.DatasetID, spec.Node))
	}
	if err != nil {
		return fmt.Errorf("stat mesh %s: %w", spec.Key(), err)
	}
	u, err := s.deps.Objects.PresignedGetObject(ctx, s.cfg.S3.MeshesBucket, spec.Key(), meshURLTTL, nil)
	if err != nil {
		return fmt.Errorf("sign mesh URL: %w", err)
	}
	out := MeshLink{Location: domain.MeshLocation(s.cfg.S3.MeshesBucket, spec.Key()), URL: u.String(),
		ExpiresAt: time.Now().Add(meshURLTTL).UTC(), Bytes: info.Size}
	if s.deps.Meshes != nil {
		rec, err := s.deps.Meshes.Mesh(ctx, spec.Node, uuid.MustParse(spec.DatasetID), spec.Table, uuid.MustParse(spec.CID))
		switch {
		case err == nil:
			out.Metrics, out.IngestedAt = &rec.Metrics, &rec.IngestedAt
		case !errors.Is(err, domain.ErrNotFound):
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}

// innermostReason is the message of the deepest application error in err's
// chain: what the failing activity said, without the wrapping.
func innermostReason(err error) string {
	reason := ""
	for e := err; e != nil; e = errors.Unwrap(e) {
		var app *temporal.ApplicationError
		if errors.As(e, &app) {
			reason, e = app.Message(), app
		}
	}
	return reason
}
