package domain

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/google/uuid"
)

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

// EtlParams is the input of the ETL activities.
type EtlParams struct {
	JobID string  `json:"job_id"`
	Spec  EtlSpec `json:"spec"`
	Node  NodeRef `json:"node"`
	// Rows is the number of rows the validation counted (for the load).
	Rows int64 `json:"rows,omitempty"`
}

// Problem is one fault in a staged file.
type Problem struct {
	Row     int64  `json:"row"` // 1 is the first data row; 0 the header or file
	Column  string `json:"column,omitempty"`
	Value   string `json:"value,omitempty"`
	Problem string `json:"problem"`
}

// EtlReport is what the validation found.
type EtlReport struct {
	Rows     int64     `json:"rows"`
	Columns  []string  `json:"columns"`
	Problems []Problem `json:"problems"`
	// ProblemCount counts every problem; Problems holds the first ones.
	ProblemCount int64 `json:"problem_count"`
}

// EtlLoaded is what LoadStaged loaded.
type EtlLoaded struct {
	Rows          int64 `json:"rows"`
	Batches       int64 `json:"batches"`
	AlreadyLoaded bool  `json:"already_loaded,omitempty"`
	DurationMS    int64 `json:"duration_ms"`
}

// Format is the staged object's format, "csv" or "parquet", from its name.
func (s *EtlSpec) Format() string {
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

// Add counts a problem, and lists it among the first maxProblems.
func (r *EtlReport) Add(p Problem) {
	r.ProblemCount++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, p)
	}
}

// HubTarget is the ETL spec node that loads into the hub's own warehouse.
const HubTarget = "hub"

// maxProblems caps the problems a report lists.
const maxProblems = 100

// EtlResult is the output (and progress) of an ETL job.
type EtlResult struct {
	State      string    `json:"state"`
	Step       string    `json:"step"`
	Report     EtlReport `json:"report"`
	Loaded     EtlLoaded `json:"loaded"`
	Registered bool      `json:"registered"`
	// CatalogRefreshed is set once the node's catalog sync was started.
	CatalogRefreshed bool   `json:"catalog_refreshed"`
	Error            string `json:"error,omitempty"`
}
