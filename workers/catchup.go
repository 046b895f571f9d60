package workers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// targetReader reads the fleet's schema and ontology targets and the
// ontology version a node holds.
type targetReader interface {
	SchemaTarget(ctx context.Context) (int, error)
	OntologyTarget(ctx context.Context) (store.OntologyTarget, error)
	ClusterOntologyVersion(ctx context.Context, cluster string) (int, error)
}

// catchUp brings nodes that register up to date: the schema catch-up of a
// node behind the fleet's schema target, the ontology catch-up of a node
// behind the fleet's ontology target (nodes that were away during a sync,
// and new ones), and a sync of the node's dataset catalog. Starts run in the
// background, so a registration is answered at once; Close waits for the
// ones in flight.
type catchUp struct {
	store    targetReader
	temporal client.Client
	log      *slog.Logger
	// ontology is the version of the hub's ontology, the one it can push.
	ontology int

	ctx    context.Context //nolint:containedctx // the owner's lifetime, cancelled by Close
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and wg.Add against Close
	closed bool
	wg     sync.WaitGroup
}

func newCatchUp(st targetReader, tc client.Client, ontology int, log *slog.Logger) *catchUp {
	ctx, cancel := context.WithCancel(context.Background())
	return &catchUp{store: st, temporal: tc, ontology: ontology, log: log, ctx: ctx, cancel: cancel}
}

// registered is called after a node registered.
func (c *catchUp) registered(node domain.Cluster) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		defer cancel()
		c.schema(ctx, node)
		c.ontologyCatchUp(ctx, node)
		c.catalog(ctx, node)
	}()
}

// schema starts the schema catch-up of a node behind the fleet's target.
func (c *catchUp) schema(ctx context.Context, node domain.Cluster) {
	target, err := c.store.SchemaTarget(ctx)
	if err != nil {
		c.log.Warn("schema catch-up: read fleet target", "node", node.Name, "err", err)
		return
	}
	if node.SchemaVersion >= target {
		return
	}
	st, err := workflows.StartSchemaCatchUp(ctx, c.temporal, node.Name, target)
	if err != nil {
		c.log.Warn("schema catch-up: start", "node", node.Name, "target", target, "err", err)
		return
	}
	c.log.Info("node behind the fleet's schema: catching up", "node", node.Name, "from", node.SchemaVersion,
		"target", target, "workflow_id", st.WorkflowID, "joined", st.Joined)
}

// ontologyCatchUp starts the ontology catch-up of a node whose recorded
// ontology version is behind the fleet's target (the version of the latest
// ontology sync). The node gets the hub's ontology, which is the target or,
// on a hub upgraded since, a newer version; a catch-up run is patient, so a
// node that is also catching up on its schema (the ontology tables come
// with it) is retried until it can store the terms.
func (c *catchUp) ontologyCatchUp(ctx context.Context, node domain.Cluster) {
	target, err := c.store.OntologyTarget(ctx)
	if err != nil {
		c.log.Warn("ontology catch-up: read fleet target", "node", node.Name, "err", err)
		return
	}
	if target.Version == 0 {
		return
	}
	have, err := c.store.ClusterOntologyVersion(ctx, node.Name)
	if err != nil {
		c.log.Warn("ontology catch-up: read node version", "node", node.Name, "err", err)
		return
	}
	if have >= target.Version {
		return
	}
	if c.ontology < target.Version {
		c.log.Warn("ontology catch-up: the hub holds an older ontology than the fleet's target", "node", node.Name,
			"hub_version", c.ontology, "target", target.Version)
		return
	}
	st, err := workflows.StartOntologyCatchUp(ctx, c.temporal, node.Name, c.ontology)
	if err != nil {
		c.log.Warn("ontology catch-up: start", "node", node.Name, "version", c.ontology, "err", err)
		return
	}
	c.log.Info("node behind the fleet's ontology: catching up", "node", node.Name, "from", have,
		"target", target.Version, "version", c.ontology, "workflow_id", st.WorkflowID, "joined", st.Joined)
}

// catalog starts a sync of the node's dataset catalog, one run per node.
func (c *catchUp) catalog(ctx context.Context, node domain.Cluster) {
	st, err := workflows.StartNodeCatalogSync(ctx, c.temporal, node.Name, true)
	if err != nil {
		c.log.Warn("catalog sync: start", "node", node.Name, "err", err)
		return
	}
	c.log.Info("node registered: syncing its dataset catalog", "node", node.Name, "workflow_id", st.WorkflowID, "joined", st.Joined)
}

// Close cancels the starts in flight and waits for them.
func (c *catchUp) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}
