package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
)

// TestEtlIntoHub: an ETL job whose node is "hub" loads into the hub's own
// warehouse (brought to the schema's head by a sync first).
func TestEtlIntoHub(t *testing.T) {
	syncFleet(t)
	dataset := uuid.New()
	var csv strings.Builder
	csv.WriteString("cid,voxel_volume\n")
	for i := range 250 {
		fmt.Fprintf(&csv, "%s,%d\n", uuid.New(), i)
	}
	obj := upload(t, "hub-neurons.csv", []byte(csv.String()))
	spec := fmt.Sprintf(`{"object": %q, "table": "neuron", "node": "hub", "dataset": {"dataset_id": %q, "name": "hub neurons"}}`, obj, dataset)
	status, raw := apiDo(t, http.MethodPost, "/v1/jobs", `{"kind": "etl", "spec": `+spec+`}`)
	require.Equal(t, http.StatusAccepted, status, string(raw))
	var st api.JobStarted
	require.NoError(t, json.Unmarshal(raw, &st))
	js := waitJob(t, st.JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s %s", js.Error, js.Result)
	res := etlResult(t, js)
	require.Equal(t, int64(250), res.Loaded.Rows)
	require.True(t, res.Registered)

	hub, err := clickhouse.Open(t.Context(), config.ClickHouse{Addr: fed.Stack.Hub.Addr(), User: "default", Database: "syndb"})
	require.NoError(t, err)
	defer func() { _ = hub.Close() }()
	for table, want := range map[string]uint64{"neuron": 250, "datasets": 1} {
		var n uint64
		require.NoError(t, hub.QueryRow(t.Context(), fmt.Sprintf("SELECT count() FROM %s WHERE dataset_id = toUUID('%s')", table, dataset)).Scan(&n))
		require.Equal(t, want, n, table)
	}
}
