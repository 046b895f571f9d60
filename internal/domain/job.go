package domain

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// JobRef names a job.
type JobRef struct {
	JobID string `json:"job_id"`
}

// FinishParams is the input of FinishJob: how a job ended, as its
// workflow records it in the job's row.
type FinishParams struct {
	JobID string    `json:"job_id"`
	State string    `json:"state"`
	Nodes []JobNode `json:"nodes"`
	// Result is the job's JSON result (an analytics summary, or the
	// EtlResult of an ETL job); null when there is none.
	Result       JSONValue `json:"result"`
	ResultObject string    `json:"result_object,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// Job kinds.
const (
	JobKindAnalytics = "analytics"
	JobKindEtl       = "etl"
)

// Job states.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobPartial   = "partial" // finished without some nodes
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// JobStates lists every state, for validating filters.
var JobStates = []string{JobPending, JobRunning, JobCompleted, JobPartial, JobFailed, JobCancelled}

// Job is one analytics or ETL job: the queue entry and its history.
type Job struct {
	ID           uuid.UUID       `json:"id"`
	Kind         string          `json:"kind"`
	State        string          `json:"state"`
	Spec         json.RawMessage `json:"spec"`
	WorkflowID   string          `json:"workflow_id"`
	Error        string          `json:"error,omitempty"`
	Nodes        json.RawMessage `json:"nodes"`
	Result       json.RawMessage `json:"result,omitempty"`
	ResultObject string          `json:"result_object,omitempty"`
	CreatedAt    time.Time       `json:"created_at"`
	StartedAt    *time.Time      `json:"started_at,omitempty"`
	FinishedAt   *time.Time      `json:"finished_at,omitempty"`
	// Owner is who created the job; nil for a job no API key created.
	Owner *JobOwner `json:"owner,omitempty"`
}

// JobOwner is the API key that created a job and the key's account. Only
// the owner key and admin keys may cancel the job.
type JobOwner struct {
	// KeyID is 0 once the key is gone; Account still names its account.
	KeyID   int64  `json:"key_id"`
	KeyName string `json:"key_name"`
	Account string `json:"account"`
}

// Node states in a job.
const (
	JobNodeQueued  = "queued"
	JobNodeRunning = "running"
	JobNodeDone    = "done"
	JobNodeMissing = "missing" // could not take part, after its retries
	// JobNodeExcluded: routing left the node out before the run (down,
	// drifted, schema behind); its Error says why.
	JobNodeExcluded = "excluded"
)

// JobNode is one node's progress in a job.
type JobNode struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Rows       int64  `json:"rows"`
	Bytes      int64  `json:"bytes"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// JobResult is the output (and, while running, the progress) of a job.
type JobResult struct {
	State    string          `json:"state"`
	Nodes    []JobNode       `json:"nodes"`
	Excluded []Exclusion     `json:"excluded"`
	Result   json.RawMessage `json:"result,omitempty"`
	Object   string          `json:"result_object,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// JSONValue is a JSON document passed to an activity. The sender (workflow
// code, which must not run encoding/json itself) sets Value and the data
// converter encodes it; the receiver gets the encoded document in Raw.
type JSONValue struct {
	Value any
	Raw   json.RawMessage
}

// MarshalJSON encodes Raw when it is set, else Value.
func (v JSONValue) MarshalJSON() ([]byte, error) {
	if v.Raw != nil {
		return v.Raw, nil
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON keeps the document as it is, in Raw.
func (v *JSONValue) UnmarshalJSON(b []byte) error {
	v.Raw = append(json.RawMessage(nil), b...)
	v.Value = nil
	return nil
}
