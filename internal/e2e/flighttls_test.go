package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/api"
	"github.com/syndb/federation/internal/domain"
)

// onDirectPlane restarts node on the direct data plane and waits until the
// hub has heard from the restarted agent; Cleanup restarts it as it was.
func onDirectPlane(t *testing.T, node string) {
	t.Helper()
	restartNodeWith(t, node, map[string]string{"SYNDB_DATA_PLANE": "direct"})
}

// certFilePin is the SHA-256, in hex, of the DER certificate in the fleet
// node's Flight certificate file.
func certFilePin(t *testing.T, node string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fedRoot, "nodes", node, "flight.crt"))
	require.NoError(t, err)
	block, _ := pem.Decode(raw)
	require.NotNil(t, block)
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// registeredPin polls the hub's registry until node's Flight certificate
// pin is want.
func registeredPin(t *testing.T, node, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		status, raw := apiDoCtx(ctx, t, http.MethodGet, "/v1/federation/clusters", "")
		if status != http.StatusOK {
			return fmt.Errorf("clusters: %d %s", status, raw)
		}
		var list api.ClusterList
		if err := json.Unmarshal(raw, &list); err != nil {
			return fmt.Errorf("clusters: %w", err)
		}
		for _, c := range list.Clusters {
			if c.Name == node && c.FlightCertSHA256 == want {
				return nil
			}
		}
		return fmt.Errorf("the registry has no Flight pin %q for %s yet", want, node)
	}))
}

// TestAnalyticsSynapseGraphOverTLS: lab-a on the direct data plane (the
// fleet gives each node a self-signed Flight certificate) registers the
// SHA-256 of its certificate file; the synapse graph of lab-a, pulled by
// the hub's worker over the node's Flight TCP listener (TLS, checked
// against that pin: the worker refuses a plaintext location of a pinned
// node) and not over libp2p, equals ClickHouse's own degrees.
func TestAnalyticsSynapseGraphOverTLS(t *testing.T) {
	routableNodes(t)
	onDirectPlane(t, "lab-a")
	registeredPin(t, "lab-a", certFilePin(t, "lab-a"))
	before, err := flightServed("lab-a")
	require.NoError(t, err)

	js := waitJob(t, startJob(t, `{"analysis": "synapse_graph", "nodes": ["lab-a"]}`).JobID, 2*time.Minute)
	require.Equal(t, domain.JobCompleted, js.State, "%s", js.Error)
	var res activities.GraphResult
	require.NoError(t, json.Unmarshal(js.Result, &res))
	requireGraph(t, res, "lab-a")

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, pollUntil(ctx, func() error {
		after, err := flightServed("lab-a")
		switch {
		case err != nil:
			return err
		case after["tcp"] <= before["tcp"]:
			return fmt.Errorf("lab-a served no Flight stream over its TCP listener yet")
		case after["libp2p"] != before["libp2p"]:
			return fmt.Errorf("lab-a served %d Flight streams over libp2p", after["libp2p"]-before["libp2p"])
		}
		return nil
	}))
}
