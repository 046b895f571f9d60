package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/fedsql"
	"github.com/syndb/federation/internal/routing"
)

// Coverage is a query's policy for nodes that cannot answer: "allow" (the
// default: answer from the nodes that can, and say which did not), "deny"
// (fail with 409 if any node the query would read is excluded or fails), or
// {"min_nodes": N} / {"min_fraction": 0.9}.
type Coverage struct {
	Deny        bool
	MinNodes    int
	MinFraction float64
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (c Coverage) MarshalJSON() ([]byte, error) {
	switch {
	case c.Deny:
		return []byte(`"deny"`), nil
	case c.MinNodes > 0:
		return json.Marshal(map[string]int{"min_nodes": c.MinNodes})
	case c.MinFraction > 0:
		return json.Marshal(map[string]float64{"min_fraction": c.MinFraction})
	}
	return []byte(`"allow"`), nil
}

// UnmarshalJSON reads the string or object forms.
func (c *Coverage) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "allow", "":
			*c = Coverage{}
		case "deny":
			*c = Coverage{Deny: true}
		default:
			return fmt.Errorf(`partial %q: use "allow", "deny", {"min_nodes": N} or {"min_fraction": F}`, s)
		}
		return nil
	}
	var o struct {
		MinNodes    *int     `json:"min_nodes"`
		MinFraction *float64 `json:"min_fraction"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return fmt.Errorf(`partial: use "allow", "deny", {"min_nodes": N} or {"min_fraction": F}: %w`, err)
	}
	switch {
	case (o.MinNodes == nil) == (o.MinFraction == nil):
		return fmt.Errorf(`partial: give one of min_nodes and min_fraction`)
	case o.MinNodes != nil && *o.MinNodes < 1:
		return fmt.Errorf("partial: min_nodes must be at least 1")
	case o.MinFraction != nil && (*o.MinFraction <= 0 || *o.MinFraction > 1):
		return fmt.Errorf("partial: min_fraction must be in (0, 1]")
	}
	*c = Coverage{}
	if o.MinNodes != nil {
		c.MinNodes = *o.MinNodes
	} else {
		c.MinFraction = *o.MinFraction
	}
	return nil
}

// QueryCoverage is how much of the fleet an answer covers: the nodes it
// read of those the query would read.
type QueryCoverage struct {
	Nodes    int     `json:"nodes"`
	Of       int     `json:"of"`
	Fraction float64 `json:"fraction"`
}

// members are the exclusions a query's coverage counts (never nil): every
// excluded node but a revoked one, which is no longer of the federation,
// unless the query named it.
func members(excluded []domain.Exclusion, named []string) []domain.Exclusion {
	out := make([]domain.Exclusion, 0, len(excluded))
	for _, e := range excluded {
		if e.Reason != domain.ReasonRevoked || slices.Contains(named, e.Name) {
			out = append(out, e)
		}
	}
	return out
}

func coverageOf(included, excluded int) QueryCoverage {
	of := included + excluded
	c := QueryCoverage{Nodes: included, Of: of}
	if of > 0 {
		c.Fraction = float64(included) / float64(of)
	}
	return c
}

// check refuses an answer that would cover less than the policy asks.
func (c Coverage) check(meta QueryMeta) error {
	cov := coverageOf(len(meta.Included), len(meta.Excluded))
	var short string
	switch {
	case c.Deny && len(meta.Excluded) > 0:
		short = "partial answers are denied"
	case c.MinNodes > 0 && cov.Nodes < c.MinNodes:
		short = fmt.Sprintf("at least %d nodes are required, %d can answer", c.MinNodes, cov.Nodes)
	case c.MinFraction > 0 && cov.Fraction < c.MinFraction:
		short = fmt.Sprintf("at least %.0f%% of the nodes are required, %d of %d can answer", c.MinFraction*100, cov.Nodes, cov.Of)
	default:
		return nil
	}
	return errConflict(short + ": " + describeExclusions(meta.Excluded))
}

// ExplainResponse is the answer of POST /v1/query/explain: where the query
// would run and what each part of it would run, credentials masked.
type ExplainResponse struct {
	Included  []string           `json:"included"`
	Excluded  []domain.Exclusion `json:"excluded"`
	Coverage  QueryCoverage      `json:"coverage"`
	Scope     fedsql.Scope       `json:"scope"`
	Tables    []string           `json:"tables"`
	MinSchema int                `json:"min_schema"`
	Aggregate bool               `json:"aggregate"`
	Limit     int                `json:"limit"`
	Settings  map[string]any     `json:"settings"`
	// Nodes is the query each included node answers.
	Nodes []fedsql.NodeQuery `json:"nodes"`
	// Merge is the hub's query over the nodes' answers ({node} stands for
	// each node's answer).
	Merge string `json:"merge"`
}

func (s *Server) explainQuery(c echo.Context) error {
	var req QueryRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	parsed, err := s.parse(req)
	if err != nil {
		return err
	}
	if err := checkNodeNames(req.Nodes); err != nil {
		return err
	}
	need := routing.Need{MinSchema: parsed.MinSchema, Nodes: req.Nodes}
	if err := routing.Validate(need); err != nil {
		return errBadRequest(err.Error())
	}
	snap := s.deps.Registry.Snapshot()
	plan := routing.Route(routing.FromClusters(snap.All()), need)
	out := ExplainResponse{Included: plan.Names(), Excluded: members(plan.Excluded, need.Nodes), Scope: parsed.Scope(), Tables: parsed.Tables,
		MinSchema: parsed.MinSchema, Aggregate: parsed.Aggregate, Limit: parsed.Limit, Settings: parsed.Settings,
		Nodes: []fedsql.NodeQuery{}}
	out.Coverage = coverageOf(len(out.Included), len(out.Excluded))
	if len(out.Included) > 0 {
		targets := s.targets(snap, out.Included)
		for i := range targets {
			if targets[i].Password != "" {
				targets[i].Password = "***"
			}
		}
		compiled, err := parsed.Plan(targets)
		if err != nil {
			return errBadRequest(err.Error())
		}
		out.Nodes, out.Merge = compiled.Nodes, compiled.Merge
	}
	return c.JSON(http.StatusOK, out)
}

// scopeOf is the scope a request asks for, in the API's words.
func scopeOf(s string) fedsql.Scope { return fedsql.Scope(strings.ToLower(strings.TrimSpace(s))) }
