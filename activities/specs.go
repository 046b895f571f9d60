package activities

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"strings"

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

// minSchema is the schema version a node needs for the spec.
func (s *AnalyticsSpec) minSchema(columns map[string]map[string]int) int {
	if s.Analysis == AnalysisSynapseGraph {
		return max(columns["synapse"]["pre_id"], columns["synapse"]["post_id"])
	}
	return columns[s.Table][s.Column]
}

// DatasetMeta describes a dataset an ETL job loads.
type DatasetMeta struct {
	DatasetID            string   `json:"dataset_id"`
	Name                 string   `json:"name"`
	Owner                string   `json:"owner,omitempty"`
	Animal               string   `json:"animal,omitempty"`
	BrainRegion          string   `json:"brain_region,omitempty"`
	GeneticManipulations []string `json:"genetic_manipulations,omitempty"`
	Microscopy           string   `json:"microscopy,omitempty"`
	PublicationDOI       string   `json:"publication_doi,omitempty"`
	Notes                string   `json:"notes,omitempty"`
}

// EtlSpec is what an ETL job loads, and where.
type EtlSpec struct {
	// Object is the staged file (CSV with a header, or Parquet) in the
	// staging bucket, as POST /v1/datasets/uploads named it.
	Object string `json:"object"`
	Table  string `json:"table"`
	// Node is the node to load into, or HubTarget for the hub's warehouse.
	Node    string      `json:"node"`
	Dataset DatasetMeta `json:"dataset"`
}

// HubTarget is the ETL spec node that loads into the hub's own warehouse.
const HubTarget = "hub"

// Format of the staged object, from its name.
func (s *EtlSpec) format() string {
	if strings.HasSuffix(strings.ToLower(s.Object), ".parquet") {
		return "parquet"
	}
	return "csv"
}

// Validate checks a spec against the tables the hub knows.
func (s *EtlSpec) Validate(types map[string]map[string]string) error {
	if !strings.HasPrefix(s.Object, "uploads/") || strings.Contains(s.Object, "..") {
		return errors.New("object must be an upload (uploads/…) from POST /v1/datasets/uploads")
	}
	if ext := strings.ToLower(path.Ext(s.Object)); ext != ".csv" && ext != ".parquet" {
		return fmt.Errorf("object %q: CSV (.csv) or Parquet (.parquet)", s.Object)
	}
	cols, ok := types[s.Table]
	if !ok || cols["dataset_id"] == "" || cols["cid"] == "" {
		return fmt.Errorf("table %q is not a compartment table", s.Table)
	}
	if s.Node == "" {
		return errors.New("node is required")
	}
	if _, err := uuid.Parse(s.Dataset.DatasetID); err != nil {
		return errors.New("dataset.dataset_id must be a UUID")
	}
	if strings.TrimSpace(s.Dataset.Name) == "" {
		return errors.New("dataset.name is required")
	}
	return nil
}

// FinishParams is the input of FinishJob.
type FinishParams struct {
	JobID        string          `json:"job_id"`
	State        string          `json:"state"`
	Nodes        json.RawMessage `json:"nodes"`
	Result       json.RawMessage `json:"result,omitempty"`
	ResultObject string          `json:"result_object,omitempty"`
	Error        string          `json:"error,omitempty"`
}
