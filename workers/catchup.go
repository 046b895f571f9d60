package workers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/syndb/federation/internal/store"
	"github.com/syndb/federation/workflows"
)

// targetReader reads the fleet's schema target.
type targetReader interface {
	SchemaTarget(ctx context.Context) (int, error)
}

// catchUp starts the schema catch-up of nodes that register behind the
// fleet's target: nodes that were away during a sync, and new ones. Starts
// run in the background, so a registration is answered at once; Close waits
// for the ones in flight.
type catchUp struct {
	store    targetReader
	temporal client.Client
	log      *slog.Logger

	ctx    context.Context //nolint:containedctx // the owner's lifetime, cancelled by Close
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and wg.Add against Close
	closed bool
	wg     sync.WaitGroup
}

func newCatchUp(st targetReader, tc client.Client, log *slog.Logger) *catchUp {
	ctx, cancel := context.WithCancel(context.Background())
	return &catchUp{store: st, temporal: tc, log: log, ctx: ctx, cancel: cancel}
}

// registered is called after a node registered.
func (c *catchUp) registered(node store.Cluster) {
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
	}()
}

// Close cancels the starts in flight and waits for them.
func (c *catchUp) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}
