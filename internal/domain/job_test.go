package domain_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/domain"
)

// FinishParams keeps the payload a workflow sent before it was one type:
// the workflow encoded typed values as `any` fields, the activity decoded
// json.RawMessage fields. Recorded histories hold that shape.
func TestFinishParamsPayload(t *testing.T) {
	t.Parallel()
	type sent struct { // what workflows sent before
		JobID        string `json:"job_id"`
		State        string `json:"state"`
		Nodes        any    `json:"nodes"`
		Result       any    `json:"result,omitempty"`
		ResultObject string `json:"result_object,omitempty"`
		Error        string `json:"error,omitempty"`
	}
	etl := domain.EtlResult{State: domain.JobCompleted, Step: "done", Report: domain.EtlReport{Rows: 3, Problems: []domain.Problem{}},
		Loaded: domain.EtlLoaded{Rows: 3, Batches: 1}}
	nodes := []domain.JobNode{{Name: "lab-a", State: domain.JobNodeDone, Rows: 3}}
	summary := json.RawMessage(`{"table":"neuron","overall":{"count":3}}`)
	for _, tc := range []struct {
		name string
		now  domain.FinishParams
		then sent
	}{
		{"etl", domain.FinishParams{JobID: "j", State: domain.JobCompleted, Nodes: []domain.JobNode{}, Result: domain.JSONValue{Value: etl}},
			sent{JobID: "j", State: domain.JobCompleted, Nodes: []domain.JobNode{}, Result: etl}},
		{"analytics", domain.FinishParams{JobID: "j", State: domain.JobPartial, Nodes: nodes, Result: domain.JSONValue{Value: summary}, ResultObject: "jobs/j/result.parquet"},
			sent{JobID: "j", State: domain.JobPartial, Nodes: nodes, Result: summary, ResultObject: "jobs/j/result.parquet"}},
		{"failed before a result", domain.FinishParams{JobID: "j", State: domain.JobFailed, Nodes: []domain.JobNode{}, Result: domain.JSONValue{Value: json.RawMessage(nil)}, Error: "boom"},
			sent{JobID: "j", State: domain.JobFailed, Nodes: []domain.JobNode{}, Result: json.RawMessage(nil), Error: "boom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now, err := json.Marshal(tc.now)
			require.NoError(t, err)
			then, err := json.Marshal(tc.then)
			require.NoError(t, err)
			require.Equal(t, string(then), string(now), "the payload is byte for byte what it was")

			var got domain.FinishParams
			require.NoError(t, json.Unmarshal(then, &got))
			var want struct {
				Result json.RawMessage `json:"result"`
			}
			require.NoError(t, json.Unmarshal(then, &want))
			require.Equal(t, string(want.Result), string(got.Result.Raw), "the activity reads the result as it was sent")
			require.Equal(t, tc.now.Nodes, got.Nodes)
		})
	}
}
