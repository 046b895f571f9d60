package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// benchmarkStore is what the benchmark routes need of PostgreSQL.
type benchmarkStore interface {
	Benchmarks(ctx context.Context, f store.BenchmarkFilter) ([]domain.Benchmark, error)
}

// BenchmarkRequest is the optional body of POST /v1/federation/benchmarks.
type BenchmarkRequest struct {
	// Concurrency bounds how many nodes are measured at once (default
	// workflows.DefaultBenchmarkConcurrency).
	Concurrency int `json:"concurrency"`
}

const (
	defaultBenchmarkPage = 100
	maxBenchmarkPage     = 1000
)

func (s *Server) startBenchmark(c echo.Context) error {
	var req BenchmarkRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		return err
	}
	if req.Concurrency < 0 || req.Concurrency > config.MaxSyncConcurrency {
		return errBadRequest(fmt.Sprintf("concurrency %d is outside 1..%d (0: the default)", req.Concurrency, config.MaxSyncConcurrency))
	}
	st, err := workflows.StartNodeBenchmark(c.Request().Context(), s.deps.Temporal, workflows.NodeBenchmarkParams{Concurrency: req.Concurrency})
	if err != nil {
		return fmt.Errorf("start node benchmark: %w", err)
	}
	setAuditTarget(c, st.WorkflowID)
	return c.JSON(http.StatusAccepted, SyncStarted{
		WorkflowID: st.WorkflowID,
		RunID:      st.RunID,
		StatusURL:  s.cfg.PublicURL + "/v1/federation/benchmarks/" + url.PathEscape(st.WorkflowID),
		UIURL:      s.uiURL(st.WorkflowID, st.RunID),
		Joined:     st.Joined,
	})
}

// BenchmarkRunStatus is the answer to GET /v1/federation/benchmarks/{workflow_id}.
type BenchmarkRunStatus struct {
	RunStatus
	workflows.NodeBenchmarkResult
}

// benchmarkIDRe matches the IDs of benchmark runs: on demand and scheduled
// (the schedule appends the time).
var benchmarkIDRe = regexp.MustCompile(`^node-benchmark(-scheduled-[0-9TZ:.-]{1,40})?$`)

func (s *Server) benchmarkStatus(c echo.Context) error {
	id := c.Param("id")
	if !benchmarkIDRe.MatchString(id) {
		return errNotFound(fmt.Sprintf("no benchmark run %.80q: IDs look like %s", id, workflows.BenchmarkID))
	}
	var out BenchmarkRunStatus
	st, err := s.runStatus(c.Request().Context(), id, "benchmark run", &out.NodeBenchmarkResult)
	if err != nil {
		return err
	}
	out.RunStatus = st
	if out.Nodes == nil {
		out.Nodes = []workflows.BenchmarkedNode{}
	}
	return c.JSON(http.StatusOK, out)
}

// BenchmarkPage is the answer to GET /v1/federation/benchmarks.
type BenchmarkPage struct {
	Benchmarks []domain.Benchmark `json:"benchmarks"`
	// Next is the URL of the next (older) page, empty on the last one.
	Next string `json:"next,omitempty"`
}

// listBenchmarks is GET /v1/federation/benchmarks: the recorded figures,
// newest first, filtered by node, kind and run, paged by cursor.
func (s *Server) listBenchmarks(c echo.Context) error {
	if s.deps.Benchmarks == nil {
		return errors.New("benchmarks: no benchmark store")
	}
	f, err := benchmarkFilter(c)
	if err != nil {
		return err
	}
	list, err := s.deps.Benchmarks.Benchmarks(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := BenchmarkPage{Benchmarks: list}
	if out.Benchmarks == nil {
		out.Benchmarks = []domain.Benchmark{}
	}
	if len(list) == f.Limit {
		v := url.Values{"limit": {strconv.Itoa(f.Limit)}, "cursor": {encodeBenchmarkCursor(list[len(list)-1])}}
		for _, name := range []string{"node", "kind", "run"} {
			if p := c.QueryParam(name); p != "" {
				v.Set(name, p)
			}
		}
		out.Next = s.cfg.PublicURL + "/v1/federation/benchmarks?" + v.Encode()
	}
	return c.JSON(http.StatusOK, out)
}

// benchmarkFilter reads GET /v1/federation/benchmarks' parameters.
func benchmarkFilter(c echo.Context) (store.BenchmarkFilter, error) {
	var f store.BenchmarkFilter
	var err error
	if f.Limit, err = queryInt(c, "limit", defaultBenchmarkPage, 1, maxBenchmarkPage); err != nil {
		return f, err
	}
	if f.Node, err = queryText(c, "node", maxTextParam); err != nil {
		return f, err
	}
	if f.Node != "" && !config.ValidName(f.Node) {
		return f, errBadRequest(fmt.Sprintf("node %.80q is not a node name", f.Node))
	}
	kind, err := queryText(c, "kind", maxTextParam)
	if err != nil {
		return f, err
	}
	f.Kind = domain.BenchmarkKind(kind)
	if kind != "" && !f.Kind.Valid() {
		return f, errBadRequest(fmt.Sprintf("kind %.40q: use one of %s", kind, domain.BenchmarkKindNames()))
	}
	if f.RunID, err = queryText(c, "run", maxTextParam); err != nil {
		return f, err
	}
	if f.RunID != "" {
		if _, err := uuid.Parse(f.RunID); err != nil {
			return f, errBadRequest(fmt.Sprintf("run %.80q is not a run ID (a UUID)", f.RunID))
		}
	}
	if raw := c.QueryParam("cursor"); raw != "" {
		cur, err := decodeBenchmarkCursor(raw)
		if err != nil {
			return f, err
		}
		f.After = &cur
	}
	return f, nil
}

// encodeBenchmarkCursor is the cursor of the page after b: its measurement
// time (in microseconds) and ID.
func encodeBenchmarkCursor(b domain.Benchmark) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d", b.MeasuredAt.UnixMicro(), b.ID))
}

func decodeBenchmarkCursor(raw string) (store.BenchmarkCursor, error) {
	bad := errBadRequest(fmt.Sprintf("cursor %.60q is not a cursor of GET /v1/federation/benchmarks: use the next link of a page", raw))
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return store.BenchmarkCursor{}, bad
	}
	micros, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return store.BenchmarkCursor{}, bad
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	// Rows are measured after 1970 and before a year from now; anything
	// else is no cursor of ours (and PostgreSQL cannot hold every int64).
	if err != nil || us < 0 || us > time.Now().AddDate(1, 0, 0).UnixMicro() {
		return store.BenchmarkCursor{}, bad
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 1 {
		return store.BenchmarkCursor{}, bad
	}
	return store.BenchmarkCursor{MeasuredAt: time.UnixMicro(us).UTC(), ID: n}, nil
}
