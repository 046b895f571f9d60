package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"
)

// Analyses a job can run.
const (
	// AnalysisSummary: count, mean, standard deviation, min, max and
	// quantiles of one numeric column, per dataset, and over all of them.
	AnalysisSummary = "summary"
	// AnalysisSynapseGraph: the synapse connectivity graph (pre → post):
	// each neuron's in and out degree, and the degree distributions.
	AnalysisSynapseGraph = "synapse_graph"
)

// AnalyticsSpec is what an analytics job computes, and where.
type AnalyticsSpec struct {
	Analysis   string    `json:"analysis"`
	Table      string    `json:"table,omitempty"`
	Column     string    `json:"column,omitempty"`
	Quantiles  []float64 `json:"quantiles,omitempty"`
	DatasetIDs []string  `json:"dataset_ids,omitempty"`
	// Nodes limits the job to these nodes (all routable nodes when empty).
	Nodes []string `json:"nodes,omitempty"`
	// RequireAll fails the job when a node cannot take part, instead of
	// completing it as partial.
	RequireAll bool `json:"require_all,omitempty"`
}

// JobTargetsParams is the input of JobTargets.
type JobTargetsParams struct {
	Spec AnalyticsSpec `json:"spec"`
}

// JobTargetsResult lists the nodes a job runs on, and those left out.
type JobTargetsResult struct {
	Nodes    []NodeRef   `json:"nodes"`
	Excluded []Exclusion `json:"excluded"`
}

// NodeAnalysisParams is the input of NodeAnalysis.
type NodeAnalysisParams struct {
	JobID string        `json:"job_id"`
	Node  NodeRef       `json:"node"`
	Spec  AnalyticsSpec `json:"spec"`
}

// NodePart is one node's part of a job's result, stored in S3 as Parquet.
type NodePart struct {
	Node       string `json:"node"`
	Object     string `json:"object"`
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes"`
	DurationMS int64  `json:"duration_ms"`
}

// MergeParams is the input of MergeJob.
type MergeParams struct {
	JobID string        `json:"job_id"`
	Spec  AnalyticsSpec `json:"spec"`
	Parts []NodePart    `json:"parts"`
}

// MergeResult is the merged result: a Parquet object and a JSON summary
// small enough for the job's row.
type MergeResult struct {
	Object  string          `json:"object"`
	Rows    int64           `json:"rows"`
	Bytes   int64           `json:"bytes"`
	Summary json.RawMessage `json:"summary"`
}

// Validate checks a spec against the tables the hub knows.
func (s *AnalyticsSpec) Validate(columns map[string]map[string]int) error {
	switch s.Analysis {
	case AnalysisSummary:
		if _, ok := columns[s.Table][s.Column]; !ok {
			return fmt.Errorf("summary needs a known table and column: %q.%q", s.Table, s.Column)
		}
		for _, q := range s.Quantiles {
			if q <= 0 || q >= 1 || math.IsNaN(q) {
				return fmt.Errorf("quantile %v is outside (0, 1)", q)
			}
		}
		if len(s.Quantiles) > 16 {
			return errors.New("at most 16 quantiles")
		}
	case AnalysisSynapseGraph:
		if s.Table != "" || s.Column != "" {
			return errors.New("synapse_graph reads the synapse table: name no table or column")
		}
	default:
		return fmt.Errorf("unknown analysis %q (known: %s, %s)", s.Analysis, AnalysisSummary, AnalysisSynapseGraph)
	}
	if len(s.DatasetIDs) > 1000 {
		return errors.New("at most 1000 dataset_ids")
	}
	for _, id := range s.DatasetIDs {
		if _, err := uuid.Parse(id); err != nil {
			return fmt.Errorf("dataset_id %q is not a UUID", id)
		}
	}
	return nil
}

// MinSchema is the schema version a node needs for the spec.
func (s *AnalyticsSpec) MinSchema(columns map[string]map[string]int) int {
	if s.Analysis == AnalysisSynapseGraph {
		return max(columns["synapse"]["pre_id"], columns["synapse"]["post_id"])
	}
	return columns[s.Table][s.Column]
}
