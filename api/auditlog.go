package api

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syndb/federation/internal/store"
)

// auditStore is what the audit log needs of PostgreSQL.
type auditStore interface {
	RecordAudit(ctx context.Context, entries []store.AuditEntry) error
	AuditEntries(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
}

// The audit writer's batches: at most auditBatch entries an insert, each
// insert bounded by auditWriteTimeout.
const (
	auditBatch        = 500
	auditWriteTimeout = 5 * time.Second
)

// auditLog writes audit entries to PostgreSQL in the background: record
// never blocks (an entry that finds the buffer full is dropped, counted
// and logged), and one writer inserts what waits in batches. start starts
// the writer; Close writes what is left and returns when the writer is
// gone. A nil *auditLog records nothing.
type auditLog struct {
	st  auditStore
	log *slog.Logger

	mu      sync.RWMutex
	closed  bool
	entries chan store.AuditEntry
	done    chan struct{}
	// dropped counts the entries dropped since the writer last logged
	// them; droppedTotal since the start.
	dropped, droppedTotal atomic.Int64
}

func newAuditLog(st auditStore, buffer int, log *slog.Logger) *auditLog {
	return &auditLog{st: st, log: log, entries: make(chan store.AuditEntry, max(1, buffer)), done: make(chan struct{})}
}

// record queues e for the writer, or drops it when the buffer is full or
// the log closed.
func (a *auditLog) record(e store.AuditEntry) {
	if a == nil {
		return
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.closed {
		select {
		case a.entries <- e:
			return
		default:
		}
	}
	a.dropped.Add(1)
	a.droppedTotal.Add(1)
}

// start runs the writer until Close.
func (a *auditLog) start() {
	if a == nil {
		return
	}
	go a.run()
}

// Close stops taking entries, writes those waiting and waits for the
// writer. Only call it after start.
func (a *auditLog) Close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.entries)
	}
	a.mu.Unlock()
	<-a.done
}

// run writes the entries as they come: each batch is what waits, up to
// auditBatch, so entries that arrive while an insert runs go in the next.
func (a *auditLog) run() {
	defer close(a.done)
	batch := make([]store.AuditEntry, 0, auditBatch)
	for e := range a.entries {
		batch = append(batch[:0], e)
	fill:
		for len(batch) < auditBatch {
			select {
			case e, ok := <-a.entries:
				if !ok {
					break fill
				}
				batch = append(batch, e)
			default:
				break fill
			}
		}
		a.write(batch)
	}
	a.logDropped()
}

// write inserts batch; a failure is logged with the number of entries lost.
func (a *auditLog) write(batch []store.AuditEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
	defer cancel()
	if err := a.st.RecordAudit(ctx, batch); err != nil {
		a.log.Warn("audit entries not written", "entries", len(batch), "err", err)
	}
	a.logDropped()
}

// logDropped logs the entries dropped since it last did.
func (a *auditLog) logDropped() {
	if n := a.dropped.Swap(0); n > 0 {
		a.log.Warn("audit buffer full: entries dropped", "dropped", n, "dropped_total", a.droppedTotal.Load())
	}
}
