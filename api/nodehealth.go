package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/routing"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// NodeHealth is one node's line in GET /v1/federation/health.
type NodeHealth struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Since     time.Time `json:"since"`
	LatencyMS float64   `json:"latency_ms"`
	// Path is the path of the hub's connection to the node at the last
	// answered ping: direct, hole-punched or relayed ("" before one).
	Path string `json:"path"`
	// Transport is that connection's transport: quic-v1 or tcp (for a
	// relayed connection, its hop to the relay's; "" before a ping).
	Transport string `json:"transport"`
	// RTTMS is that ping's round trip, in milliseconds (as latency_ms).
	RTTMS         float64   `json:"rtt_ms"`
	Reason        string    `json:"reason"`
	LastSeen      time.Time `json:"last_seen"`
	SchemaVersion int       `json:"schema_version"`
}

// HealthReport is the answer to GET /v1/federation/health.
type HealthReport struct {
	Nodes []NodeHealth `json:"nodes"`
	// AsOf is when the registry snapshot the report comes from was read.
	AsOf time.Time `json:"as_of"`
}

func (s *Server) healthReport(c echo.Context) error {
	snap := s.deps.Registry.Snapshot()
	out := HealthReport{Nodes: make([]NodeHealth, 0, snap.Len()), AsOf: snap.Loaded}
	for _, cl := range snap.All() {
		if cl.Status != "active" {
			continue
		}
		out.Nodes = append(out.Nodes, NodeHealth{Name: cl.Name, State: cl.Health, Since: cl.HealthSince, LatencyMS: cl.HealthLatencyMS,
			Path: cl.HealthPath, Transport: cl.HealthTransport, RTTMS: cl.HealthLatencyMS, Reason: cl.HealthReason, LastSeen: cl.LastSeen, SchemaVersion: cl.SchemaVersion})
	}
	return c.JSON(http.StatusOK, out)
}

// HealthHistory is the answer to GET /v1/federation/clusters/{name}/health/history.
type HealthHistory struct {
	Transitions []store.HealthTransition `json:"transitions"`
	// Next is the URL of the next (older) page, empty on the last one.
	Next string `json:"next,omitempty"`
}

const (
	defaultHistoryPage = 50
	maxHistoryPage     = 1000
	// maxRoutingNodes bounds the nodes a routing plan may name.
	maxRoutingNodes = 1000
)

func (s *Server) healthHistory(c echo.Context) error {
	name, err := pathText(c, "name")
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit", defaultHistoryPage, 1, maxHistoryPage)
	if err != nil {
		return err
	}
	before, err := queryInt(c, "before", 0, 0, math.MaxInt64)
	if err != nil {
		return err
	}
	if !config.ValidName(name) {
		return errNotFound(fmt.Sprintf("no cluster %q", name))
	}
	trs, err := s.deps.Store.HealthHistory(c.Request().Context(), name, limit, int64(before))
	if errors.Is(err, domain.ErrNotFound) {
		return errNotFound(fmt.Sprintf("no cluster %q", name))
	}
	if err != nil {
		return err
	}
	out := HealthHistory{Transitions: trs}
	if len(trs) == limit {
		out.Next = fmt.Sprintf("%s/v1/federation/clusters/%s/health/history?limit=%d&before=%d",
			s.cfg.PublicURL, url.PathEscape(name), limit, trs[len(trs)-1].ID)
	}
	return c.JSON(http.StatusOK, out)
}

// SweepRequested is the answer to POST /v1/federation/health/sweep.
type SweepRequested struct {
	WorkflowID string `json:"workflow_id"`
	UIURL      string `json:"ui_url"`
}

func (s *Server) sweepNow(c echo.Context) error {
	err := s.deps.Temporal.SignalWorkflow(c.Request().Context(), workflows.HealthMonitorID, "", workflows.SweepNowSignal, nil)
	if err != nil {
		return fmt.Errorf("signal the health monitor: %w", err)
	}
	setAuditTarget(c, workflows.HealthMonitorID)
	return c.JSON(http.StatusAccepted, SweepRequested{WorkflowID: workflows.HealthMonitorID, UIURL: s.uiURL(workflows.HealthMonitorID, "")})
}

// RoutingPlan is the answer to GET /v1/federation/routing: where a query
// needing the given schema would go now, and why the other nodes would not.
type RoutingPlan struct {
	Included []string `json:"included"`
	// Nodes are the included nodes, in the same order, with what routing
	// ordered them by.
	Nodes    []RoutedNode       `json:"nodes"`
	Excluded []domain.Exclusion `json:"excluded"`
}

// RoutedNode is an included node of a routing plan and what ranked it:
// its health state, its recent benchmark figure (benchmark_ms, 0: none)
// and its last ping's round trip.
type RoutedNode struct {
	Name        string  `json:"name"`
	Health      string  `json:"health"`
	BenchmarkMS float64 `json:"benchmark_ms"`
	LatencyMS   float64 `json:"latency_ms"`
}

func (s *Server) routingPlan(c echo.Context) error {
	need := routing.Need{}
	var err error
	if need.MinSchema, err = queryInt(c, "min_schema", 0, 0, math.MaxInt32); err != nil {
		return err
	}
	if need.MaxSchema, err = queryInt(c, "max_schema", 0, 0, math.MaxInt32); err != nil {
		return err
	}
	raw, err := queryText(c, "nodes", maxRoutingNodes*64)
	if err != nil {
		return err
	}
	if raw != "" {
		need.Nodes = strings.Split(raw, ",")
	}
	if err := routing.Validate(need); err != nil {
		return errBadRequest(err.Error())
	}
	plan := routing.Route(routing.FromClusters(s.deps.Registry.Snapshot().All()), need)
	out := RoutingPlan{Included: plan.Names(), Nodes: make([]RoutedNode, 0, len(plan.Included)), Excluded: plan.Excluded}
	if out.Included == nil {
		out.Included = []string{}
	}
	for _, n := range plan.Included {
		out.Nodes = append(out.Nodes, RoutedNode{Name: n.Name, Health: string(n.Health),
			BenchmarkMS: float64(n.Benchmark) / float64(time.Millisecond), LatencyMS: float64(n.Latency) / float64(time.Millisecond)})
	}
	if out.Excluded == nil {
		out.Excluded = []domain.Exclusion{}
	}
	return c.JSON(http.StatusOK, out)
}
