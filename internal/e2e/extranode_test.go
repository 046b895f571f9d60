package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/devstack/fleet"
)

// startExtraNode starts a test-only node name whose warehouse is database
// db on lab-a's ClickHouse (dropped first, so it starts empty), with env on
// top of its settings, and returns that ClickHouse's address. When the test
// ends the node is stopped and revoked and its database dropped.
func startExtraNode(t *testing.T, name, db string, env map[string]string) string {
	t.Helper()
	chAddr := fed.Stack.Nodes["lab-a"].Addr()
	dropDatabase := func(ctx context.Context) error {
		c, err := clickhouse.Open(ctx, config.ClickHouse{Addr: chAddr, User: "default", Database: "default"})
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		return c.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	}
	require.NoError(t, dropDatabase(t.Context()))
	require.NoError(t, fed.StartExtraNode(t.Context(), fleet.ExtraNode{Name: name, ClickHouseAddr: chAddr, Database: db, Env: env}))
	t.Cleanup(func() {
		_ = fed.StopNode(context.Background(), name, false)
		status, raw := apiDoCtx(context.Background(), t, http.MethodDelete, "/v1/federation/clusters/"+name, "")
		require.Equal(t, http.StatusOK, status, string(raw))
		require.NoError(t, dropDatabase(context.Background()))
	})
	return chAddr
}
