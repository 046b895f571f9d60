// Package lifecycle holds the run-once state an agent (the hub's worker, a
// node agent) shares between its Run and its Shutdown: Run starts at most
// once and not after Shutdown, and Shutdown cancels a running Run and
// returns only once it has returned.
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// ErrRun refuses a second Run, or a Run after Shutdown.
var ErrRun = errors.New("run called after Shutdown or twice")

// Once is the zero-value-ready run-once state of one agent.
type Once struct {
	mu      sync.Mutex
	cancel  context.CancelFunc // of the running Run; nil before
	stopped bool               // Shutdown was called
	done    chan struct{}      // closed when Run returns
}

// Begin starts a Run: it returns the context Run works under and end, which
// Run must call (deferred) when it returns. It fails with ErrRun when Run
// already began or Shutdown was called.
func (o *Once) Begin(ctx context.Context) (context.Context, func(), error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped || o.cancel != nil {
		return nil, nil, ErrRun
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	o.cancel, o.done = cancel, done
	return ctx, func() { cancel(); close(done) }, nil
}

// Shutdown cancels a running Run and waits for it to return; before Run it
// makes Run refuse to start. It is safe to call more than once.
func (o *Once) Shutdown() {
	o.mu.Lock()
	o.stopped = true
	cancel, done := o.cancel, o.done
	o.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// StartErr is what Run returns when its start failed with err under ctx,
// the context Begin returned: nil when ctx had ended, since a stop asked for
// while the agent was still starting is a clean stop (the step it
// interrupted is logged on log), and err otherwise.
func StartErr(ctx context.Context, log *slog.Logger, err error) error {
	if err != nil && ctx.Err() != nil {
		log.Info("stopped while starting", "interrupted", err)
		return nil
	}
	return err
}
