package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/migrate"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// hubSchemaLock is the advisory lock key that serialises migrations of the
// hub warehouse across worker replicas.
const hubSchemaLock int64 = 0x5359_4e44_4201 // "SYNDB" + 1

// schemaStore is what the schema activities need of the registry.
type schemaStore interface {
	Clusters(ctx context.Context, activeOnly bool) ([]domain.Cluster, error)
	RecordSchemaVersion(ctx context.Context, cluster string, version int, applied []domain.AppliedVersion, workflowID string) error
	RecordSchemaDrift(ctx context.Context, cluster string, version int, reason string) error
	SetSchemaTarget(ctx context.Context, version int, workflowID string) error
	WithAdvisoryLock(ctx context.Context, key int64, fn func(ctx context.Context) error) error
}

// Schema holds the activities of the schema sync workflow.
type Schema struct {
	store      schemaStore
	warehouse  driver.Conn
	nodes      nodeCaller
	migrations []migrate.Migration
	log        *slog.Logger
}

// NewSchema returns the schema activities. migrations are the hub's
// embedded ClickHouse migrations, 1..n.
func NewSchema(st schemaStore, warehouse driver.Conn, nodes nodeCaller, migrations []migrate.Migration, log *slog.Logger) *Schema {
	return &Schema{store: st, warehouse: warehouse, nodes: nodes, migrations: migrations, log: log}
}

// ApplyHubSchema applies the pending migrations, up to Target, to the hub warehouse.
func (a *Schema) ApplyHubSchema(ctx context.Context, p domain.ApplyHubParams) (domain.ApplyHubResult, error) {
	if err := a.checkTarget(p.Target); err != nil {
		return domain.ApplyHubResult{}, err
	}
	var res migrate.Result
	err := a.store.WithAdvisoryLock(ctx, hubSchemaLock, func(ctx context.Context) error {
		var err error
		res, err = migrate.Apply(ctx, a.warehouse, a.migrations, p.Target)
		return err
	})
	if errors.Is(err, migrate.ErrDrift) {
		return domain.ApplyHubResult{}, temporal.NewNonRetryableApplicationError("hub warehouse: "+err.Error(), domain.ErrTypeDrift, err)
	}
	if err != nil {
		return domain.ApplyHubResult{}, fmt.Errorf("migrate hub warehouse: %w", err)
	}
	if !p.CatchUp {
		if err := a.store.SetSchemaTarget(ctx, p.Target, activity.GetInfo(ctx).WorkflowExecution.ID); err != nil {
			return domain.ApplyHubResult{}, err
		}
	}
	a.log.Info("hub warehouse migrated", "from", res.From, "to", res.To, "applied", len(res.Applied))
	return domain.ApplyHubResult{From: res.From, To: res.To, Applied: summarize(res.Applied)}, nil
}

// ListSyncTargets returns the active, registered nodes, by name.
func (a *Schema) ListSyncTargets(ctx context.Context) ([]domain.NodeRef, error) {
	cs, err := a.store.Clusters(ctx, true)
	if err != nil {
		return nil, err
	}
	out := make([]domain.NodeRef, 0, len(cs))
	for _, c := range cs {
		out = append(out, nodeRef(c))
	}
	return out, nil
}

// SyncNodeSchema sends SchemaSync to one node, which applies what it lacks up
// to Target, and records the node's new version in the registry. A node in
// drift fails without retry.
func (a *Schema) SyncNodeSchema(ctx context.Context, p domain.SyncNodeParams) (domain.SyncNodeResult, error) {
	if err := a.checkTarget(p.Target); err != nil {
		return domain.SyncNodeResult{}, err
	}
	stopBeats := heartbeat(ctx, func() any { return p.Node.Name })
	defer stopBeats()
	return a.syncNode(ctx, p.Node, a.syncRequest(p.Target), p.WorkflowID)
}

// syncRequest is the SchemaSync every node of a sync to target is sent:
// the hub's migrations up to target.
func (a *Schema) syncRequest(target int) *wire.SchemaSyncRequest {
	return &wire.SchemaSyncRequest{Target: int32(target), Migrations: wire.FromMigrations(a.migrations[:target])}
}

// checkTarget refuses a target outside the hub's migrations.
func (a *Schema) checkTarget(target int) error {
	if target < 1 || target > len(a.migrations) {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("target version %d is outside 1..%d", target, len(a.migrations)), domain.ErrTypeInvalid, nil)
	}
	return nil
}

// syncNode is one try of one node's sync: SchemaSync, then the node's new
// version in the registry. Errors are classified (see classify); a node in
// drift is recorded as such.
func (a *Schema) syncNode(ctx context.Context, node domain.NodeRef, req *wire.SchemaSyncRequest, workflowID string) (domain.SyncNodeResult, error) {
	start := time.Now()
	var resp wire.SchemaSyncResponse
	err := a.nodes.Call(ctx, node.PeerID, node.Addrs, p2p.SchemaSync, req, &resp)
	switch {
	case p2p.IsCode(err, p2p.CodeDrift):
		d, ok := migrate.ParseDrift(err.Error())
		if !ok {
			d = &migrate.DriftError{Reason: err.Error()}
		}
		if rerr := a.store.RecordSchemaDrift(ctx, node.Name, d.Version, d.Reason); rerr != nil {
			return domain.SyncNodeResult{}, rerr
		}
		activity.GetLogger(ctx).Warn("node schema drift: left untouched", "node", node.Name, "version", d.Version, "reason", d.Reason)
		return domain.SyncNodeResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: %s", node.Name, d.Error()), domain.ErrTypeDrift, err)
	case err != nil:
		return domain.SyncNodeResult{}, classify(fmt.Errorf("schema sync of %s: %w", node.Name, err))
	}
	ledger := make([]domain.AppliedVersion, 0, len(resp.GetLedger()))
	for _, l := range resp.GetLedger() {
		ledger = append(ledger, domain.AppliedVersion{Version: int(l.GetVersion()), Checksum: l.GetChecksum()})
	}
	from, to := int(resp.GetFrom()), int(resp.GetTo())
	if err := a.store.RecordSchemaVersion(ctx, node.Name, to, ledger, workflowID); err != nil {
		return domain.SyncNodeResult{}, err
	}
	applied := wire.ToApplied(resp.GetApplied())
	activity.GetLogger(ctx).Info("node schema synced", "node", node.Name, "from", from, "to", to,
		"applied", len(applied), "took", time.Since(start))
	return domain.SyncNodeResult{From: from, To: to, Applied: summarize(applied)}, nil
}

func summarize(applied []migrate.Applied) []domain.MigrationResult {
	out := make([]domain.MigrationResult, 0, len(applied))
	for _, a := range applied {
		out = append(out, domain.MigrationResult{Version: a.Version, Name: a.Name, DurationMS: a.Duration.Milliseconds()})
	}
	return out
}
