package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/minio/minio-go/v7"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// jobsStore is what the jobs API needs of PostgreSQL.
type jobsStore interface {
	CreateJob(ctx context.Context, id uuid.UUID, kind string, spec json.RawMessage, workflowID string, createdBy int64) (domain.Job, error)
	Job(ctx context.Context, id uuid.UUID) (domain.Job, error)
	Jobs(ctx context.Context, state string, limit, offset int) ([]domain.Job, error)
}

// presigner hands out time-limited URLs of S3 objects: downloads, and
// uploads under a POST policy (which S3 enforces, size included).
type presigner interface {
	PresignedGetObject(ctx context.Context, bucket, object string, expiry time.Duration, reqParams url.Values) (*url.URL, error)
	PresignedPostPolicy(ctx context.Context, p *minio.PostPolicy) (*url.URL, map[string]string, error)
	StatObject(ctx context.Context, bucket, object string, opts minio.StatObjectOptions) (minio.ObjectInfo, error)
}

// resultURLTTL is how long a result download URL is valid.
const resultURLTTL = time.Hour

// JobRequest is the body of POST /v1/jobs.
type JobRequest struct {
	Kind string          `json:"kind"`
	Spec json.RawMessage `json:"spec"`
}

// JobStarted is the 202 answer to POST /v1/jobs.
type JobStarted struct {
	JobID      string `json:"job_id"`
	WorkflowID string `json:"workflow_id"`
	StatusURL  string `json:"status_url"`
	UIURL      string `json:"ui_url"`
}

// JobStatus is the answer to GET /v1/jobs/{id}: the job's row and, while
// it runs, its live progress.
type JobStatus struct {
	domain.Job
	UIURL string `json:"ui_url"`
	// Progress is in the shape of the job's kind: a domain.JobResult (per
	// node) for an analytics job, a domain.EtlResult (step, report, loaded)
	// for an ETL job.
	Progress json.RawMessage `json:"progress,omitempty"`
}

// JobList is the answer to GET /v1/jobs.
type JobList struct {
	Jobs []domain.Job `json:"jobs"`
	Next string       `json:"next,omitempty"`
}

// JobResultLink is the answer to GET /v1/jobs/{id}/result.
type JobResultLink struct {
	JobID     string          `json:"job_id"`
	State     string          `json:"state"`
	Format    string          `json:"format"`
	URL       string          `json:"url"`
	ExpiresAt time.Time       `json:"expires_at"`
	Summary   json.RawMessage `json:"summary,omitempty"`
}

func (s *Server) createJob(c echo.Context) error {
	var req JobRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	id := uuid.New()
	var (
		spec any
		err  error
	)
	switch req.Kind {
	case domain.JobKindAnalytics:
		var as domain.AnalyticsSpec
		if err = decodeStrict(bytes.NewReader(req.Spec), &as); err == nil {
			err = as.Validate(s.columns)
		}
		spec = as
	case domain.JobKindEtl:
		var es domain.EtlSpec
		if err = decodeStrict(bytes.NewReader(req.Spec), &es); err == nil {
			err = es.Validate(s.types)
		}
		spec = es
	default:
		return errBadRequest(fmt.Sprintf("kind %q: use analytics or etl", req.Kind))
	}
	if err != nil {
		return errBadRequest("invalid spec: " + err.Error())
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	var by int64
	if p, ok := principal(c); ok {
		by = p.KeyID
	}
	ctx := c.Request().Context()
	if _, err := s.deps.Jobs.CreateJob(ctx, id, req.Kind, raw, workflows.JobID(id.String()), by); err != nil {
		return err
	}
	setAuditTarget(c, workflows.JobID(id.String()))
	var st workflows.Started
	switch sp := spec.(type) {
	case domain.AnalyticsSpec:
		st, err = workflows.StartAnalyticsJob(ctx, s.deps.Temporal, workflows.AnalyticsJobParams{JobID: id.String(), Spec: sp})
	case domain.EtlSpec:
		st, err = workflows.StartEtlJob(ctx, s.deps.Temporal, workflows.EtlJobParams{JobID: id.String(), Spec: sp})
	}
	if err != nil {
		return fmt.Errorf("start job: %w", err)
	}
	return c.JSON(http.StatusAccepted, JobStarted{JobID: id.String(), WorkflowID: st.WorkflowID,
		StatusURL: s.cfg.PublicURL + "/v1/jobs/" + id.String(), UIURL: s.uiURL(st.WorkflowID, st.RunID)})
}

// UploadRequest is the body of POST /v1/datasets/uploads.
type UploadRequest struct {
	// Filename ends in .csv or .parquet.
	Filename string `json:"filename"`
}

// Upload is the answer to POST /v1/datasets/uploads: POST the file to URL
// as a multipart form (Fields, then the file as the field "file"), then
// start an ETL job with the object. The store refuses a file over MaxBytes.
type Upload struct {
	Object    string            `json:"object"`
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Fields    map[string]string `json:"fields"`
	MaxBytes  int64             `json:"max_bytes"`
	ExpiresAt time.Time         `json:"expires_at"`
}

var uploadNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}\.(csv|parquet)$`)

func (s *Server) createUpload(c echo.Context) error {
	var req UploadRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if !uploadNameRe.MatchString(req.Filename) || strings.Contains(req.Filename, "..") {
		return errBadRequest("filename: letters, digits, '.', '_' and '-', ending in .csv or .parquet")
	}
	object := fmt.Sprintf("uploads/%s/%s", uuid.New(), req.Filename)
	setAuditTarget(c, object)
	expires := time.Now().Add(resultURLTTL).UTC()
	u, fields, err := s.presignStagedPost(c.Request().Context(), object, expires, 0, s.cfg.ETL.MaxUploadBytes)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	return c.JSON(http.StatusCreated, Upload{Object: object, URL: u.String(), Method: http.MethodPost, Fields: fields,
		MaxBytes: s.cfg.ETL.MaxUploadBytes, ExpiresAt: expires})
}

func (s *Server) jobByParam(c echo.Context) (domain.Job, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return domain.Job{}, errNotFound(fmt.Sprintf("no job %q", c.Param("id")))
	}
	j, err := s.deps.Jobs.Job(c.Request().Context(), id)
	if errors.Is(err, domain.ErrNotFound) {
		return domain.Job{}, errNotFound(fmt.Sprintf("no job %s", id))
	}
	return j, err
}

func (s *Server) getJob(c echo.Context) error {
	j, err := s.jobByParam(c)
	if err != nil {
		return err
	}
	out := JobStatus{Job: j, UIURL: s.uiURL(j.WorkflowID, "")}
	if j.State == domain.JobPending || j.State == domain.JobRunning {
		// A job whose workflow has not started yet has no progress to show.
		if v, err := s.deps.Temporal.QueryWorkflow(c.Request().Context(), j.WorkflowID, "", workflows.ProgressQuery); err == nil {
			p, err := jobProgress(j.Kind, v)
			if err != nil {
				s.deps.Log.Warn("job progress unreadable", "job", j.ID, "kind", j.Kind, "err", err)
			}
			out.Progress = p
		}
	}
	return c.JSON(http.StatusOK, out)
}

// jobProgress decodes a progress query's answer into the progress type of
// the job's kind.
func jobProgress(kind string, v converter.EncodedValue) (json.RawMessage, error) {
	var p any
	switch kind {
	case domain.JobKindAnalytics:
		p = &domain.JobResult{}
	case domain.JobKindEtl:
		p = &domain.EtlResult{}
	default:
		return nil, fmt.Errorf("job kind %q has no progress type", kind)
	}
	if err := v.Get(p); err != nil {
		return nil, fmt.Errorf("decode %s job progress: %w", kind, err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode %s job progress: %w", kind, err)
	}
	return raw, nil
}

func (s *Server) listJobs(c echo.Context) error {
	state := c.QueryParam("state")
	if state != "" && !slices.Contains(domain.JobStates, state) {
		return errBadRequest(fmt.Sprintf("state %q: use one of %s", state, strings.Join(domain.JobStates, ", ")))
	}
	limit, err := queryInt(c, "limit", 50, 1, 500)
	if err != nil {
		return err
	}
	offset, err := queryInt(c, "offset", 0, 0, maxOffset)
	if err != nil {
		return err
	}
	jobs, err := s.deps.Jobs.Jobs(c.Request().Context(), state, limit, offset)
	if err != nil {
		return err
	}
	out := JobList{Jobs: jobs}
	if len(jobs) == limit {
		q := url.Values{"limit": {fmt.Sprint(limit)}, "offset": {fmt.Sprint(offset + limit)}}
		if state != "" {
			q.Set("state", state)
		}
		out.Next = s.cfg.PublicURL + "/v1/jobs?" + q.Encode()
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) jobResult(c echo.Context) error {
	j, err := s.jobByParam(c)
	if err != nil {
		return err
	}
	if j.ResultObject == "" {
		return errConflict(fmt.Sprintf("job %s has no result (state %s)", j.ID, j.State))
	}
	u, err := s.deps.Objects.PresignedGetObject(c.Request().Context(), s.cfg.S3.ResultsBucket, j.ResultObject, resultURLTTL, nil)
	if err != nil {
		return fmt.Errorf("sign result URL: %w", err)
	}
	return c.JSON(http.StatusOK, JobResultLink{JobID: j.ID.String(), State: j.State, Format: "parquet", URL: u.String(),
		ExpiresAt: time.Now().Add(resultURLTTL).UTC(), Summary: j.Result})
}

// mayCancel says whether p may cancel j: an admin may cancel any job, an
// operator only the jobs its own key created.
func mayCancel(p store.Principal, j domain.Job) bool {
	if p.Role == store.RoleAdmin {
		return true
	}
	return p.Role == store.RoleOperator && j.Owner != nil && j.Owner.KeyID != 0 && j.Owner.KeyID == p.KeyID
}

func (s *Server) cancelJob(c echo.Context) error {
	j, err := s.jobByParam(c)
	if err != nil {
		return err
	}
	if p, _ := principal(c); !mayCancel(p, j) {
		return errForbidden(fmt.Sprintf("job %s belongs to another key: only its owner or an admin may cancel it", j.ID))
	}
	if j.State != domain.JobPending && j.State != domain.JobRunning {
		return errConflict(fmt.Sprintf("job %s already ended (%s)", j.ID, j.State))
	}
	ctx := c.Request().Context()
	if err := s.deps.Temporal.CancelWorkflow(ctx, j.WorkflowID, ""); err != nil {
		desc, derr := s.deps.Temporal.DescribeWorkflowExecution(ctx, j.WorkflowID, "")
		if derr == nil && desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return errConflict(fmt.Sprintf("job %s already ended", j.ID))
		}
		return fmt.Errorf("cancel job %s: %w", j.ID, err)
	}
	return c.JSON(http.StatusAccepted, map[string]string{"job_id": j.ID.String(), "state": "cancelling"})
}

// presignStagedPost signs a browser-style POST of object into the staging
// bucket until expires, of between minBytes and maxBytes: the URL and the
// form fields the client sends with the file.
func (s *Server) presignStagedPost(ctx context.Context, object string, expires time.Time, minBytes, maxBytes int64) (*url.URL, map[string]string, error) {
	policy := minio.NewPostPolicy()
	for _, err := range []error{
		policy.SetBucket(s.cfg.S3.StagingBucket), policy.SetKey(object), policy.SetExpires(expires),
		policy.SetContentLengthRange(minBytes, maxBytes),
	} {
		if err != nil {
			return nil, nil, fmt.Errorf("post policy: %w", err)
		}
	}
	u, fields, err := s.deps.Objects.PresignedPostPolicy(ctx, policy)
	if err != nil {
		return nil, nil, fmt.Errorf("sign post policy: %w", err)
	}
	return u, fields, nil
}
