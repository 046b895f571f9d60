package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/internal/wire"
)

// catalogStore is what the catalog activities need of PostgreSQL.
type catalogStore interface {
	ReplaceCatalog(ctx context.Context, cluster string, datasets []store.CatalogDataset, fetchedAt time.Time, workflowID string) (domain.CatalogChange, error)
}

// Catalog holds the activities of the catalog sync workflow.
type Catalog struct {
	store catalogStore
	nodes nodeCaller
}

// NewCatalog returns the catalog activities.
func NewCatalog(st catalogStore, nodes nodeCaller) *Catalog {
	return &Catalog{store: st, nodes: nodes}
}

// SyncNodeCatalog asks one node for its dataset catalog, with each
// dataset's row count per table, and writes it to PostgreSQL: the node's
// datasets are upserted and the ones it no longer reports removed.
func (a *Catalog) SyncNodeCatalog(ctx context.Context, p domain.SyncNodeCatalogParams) (domain.SyncNodeCatalogResult, error) {
	fetched := time.Now()
	var resp wire.DatasetCatalogResponse
	stopBeats := heartbeat(ctx, func() any { return p.Node.Name })
	err := a.nodes.Call(ctx, p.Node.PeerID, p.Node.Addrs, p2p.DatasetCatalog, &wire.DatasetCatalogRequest{WithRowCounts: true}, &resp)
	stopBeats()
	if err != nil {
		return domain.SyncNodeCatalogResult{}, classify(fmt.Errorf("dataset catalog of %s: %w", p.Node.Name, err))
	}
	if resp.GetNode() != p.Node.Name {
		return domain.SyncNodeCatalogResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s answered as node %q", p.Node.Name, resp.GetNode()), domain.ErrTypeInvalid, nil)
	}
	datasets, skipped := catalogDatasets(resp.GetDatasets())
	if skipped > 0 {
		activity.GetLogger(ctx).Warn("node reported datasets without a UUID or twice: left out", "node", p.Node.Name, "skipped", skipped)
	}
	ch, err := a.store.ReplaceCatalog(ctx, p.Node.Name, datasets, fetched, p.WorkflowID)
	if err != nil {
		return domain.SyncNodeCatalogResult{}, err
	}
	activity.GetLogger(ctx).Info("node catalog synced", "node", p.Node.Name, "datasets", ch.Datasets, "added", ch.Added,
		"updated", ch.Updated, "removed", ch.Removed, "stale", ch.Stale, "took", time.Since(fetched))
	return domain.SyncNodeCatalogResult{CatalogChange: ch, Skipped: skipped}, nil
}

// catalogDatasets converts a node's datasets, leaving out those whose ID is
// not a UUID and repeats of an ID (a MergeTree table may hold a row twice):
// the first reported wins.
func catalogDatasets(in []*wire.Dataset) ([]store.CatalogDataset, int) {
	out := make([]store.CatalogDataset, 0, len(in))
	seen := make(map[uuid.UUID]bool, len(in))
	skipped := 0
	for _, d := range in {
		id, err := uuid.Parse(d.GetDatasetId())
		if err != nil || seen[id] {
			skipped++
			continue
		}
		seen[id] = true
		tables := make([]store.TableRows, 0, len(d.GetTables()))
		for _, t := range d.GetTables() {
			tables = append(tables, store.TableRows{Table: t.GetTable(), Rows: t.GetRows()})
		}
		var created time.Time
		if d.GetCreatedAt() != nil {
			created = d.GetCreatedAt().AsTime()
		}
		out = append(out, store.CatalogDataset{
			ID: id, Name: d.GetName(), Owner: d.GetOwner(), Animal: d.GetAnimal(), BrainRegion: d.GetBrainRegion(),
			GeneticManipulations: d.GetGeneticManipulations(), Microscopy: d.GetMicroscopy(),
			PublicationDOI: d.GetPublicationDoi(), Notes: d.GetNotes(), CreatedAt: created, Tables: tables,
		})
	}
	return out, skipped
}
