package nodeagent

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/syndb/federation/internal/clickhouse"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// ontologySchema is the schema version that creates the ontology tables.
const ontologySchema = 4

// handleOntologySync stores an ontology version exactly once. Its terms go
// in as one insert block (atomic on ClickHouse), then the version goes in
// the ledger; a retry after a crash between the two finds the terms and
// only records the version. A version already recorded with another
// checksum is drift and is refused.
func (a *Agent) handleOntologySync(ctx context.Context, _ peer.ID, req *wire.OntologySyncRequest) (*wire.OntologySyncResponse, error) {
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "clickhouse: %v", err)
	}
	a.ontoMu.Lock()
	defer a.ontoMu.Unlock()
	var current uint32
	if err := conn.QueryRow(ctx, `SELECT max(version) FROM ontology_versions`).Scan(&current); err != nil {
		if clickhouse.IsCode(err, clickhouse.CodeUnknownTable) {
			return nil, p2p.Errorf(p2p.CodeUnavailable, "the ontology tables arrive with schema version %d: sync the schema first", ontologySchema)
		}
		return nil, p2p.Errorf(p2p.CodeUnavailable, "read ontology version: %v", err)
	}
	v := uint32(req.GetVersion())
	var recorded string
	err = conn.QueryRow(ctx, `SELECT any(checksum) FROM ontology_versions WHERE version = ?`, v).Scan(&recorded)
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "read ontology ledger: %v", err)
	}
	switch {
	case recorded == req.GetChecksum():
		return &wire.OntologySyncResponse{From: int32(current), To: int32(current)}, nil
	case recorded != "":
		return nil, p2p.Errorf(p2p.CodeDrift, "ontology version %d is recorded with checksum %s, the hub sent %s", v, recorded, req.GetChecksum())
	case v < current:
		return nil, p2p.Errorf(p2p.CodeInvalid, "ontology version %d is older than the node's %d", v, current)
	}
	var present uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM ontology_terms WHERE version = ?`, v).Scan(&present); err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "count ontology terms: %v", err)
	}
	written := 0
	switch {
	case present == uint64(len(req.GetTerms())):
		a.log.Info("ontology terms already written; recording the version", "version", v)
	case present != 0:
		return nil, p2p.Errorf(p2p.CodeInternal, "ontology version %d has %d of %d terms written", v, present, len(req.GetTerms()))
	default:
		batch, err := conn.PrepareBatch(ctx, `INSERT INTO ontology_terms (version, kind, term_id, label, parent_id, synonyms)`)
		if err != nil {
			return nil, p2p.Errorf(p2p.CodeUnavailable, "write ontology terms: %v", err)
		}
		for _, t := range req.GetTerms() {
			syn := t.GetSynonyms()
			if syn == nil {
				syn = []string{}
			}
			if err := batch.Append(v, t.GetKind(), t.GetId(), t.GetLabel(), t.GetParentId(), syn); err != nil {
				_ = batch.Abort()
				return nil, p2p.Errorf(p2p.CodeInternal, "write ontology terms: %v", err)
			}
		}
		if err := batch.Send(); err != nil {
			return nil, p2p.Errorf(p2p.CodeUnavailable, "write ontology terms: %v", err)
		}
		written = len(req.GetTerms())
	}
	// Inserts go through batches: the native protocol's parameterised
	// INSERT ... VALUES is not understood by older servers.
	ledger, err := conn.PrepareBatch(ctx, `INSERT INTO ontology_versions (version, checksum, terms, applied_at)`)
	if err == nil {
		err = ledger.Append(v, req.GetChecksum(), uint32(len(req.GetTerms())), time.Now().UTC().Truncate(time.Second))
		if err == nil {
			err = ledger.Send()
		} else {
			_ = ledger.Abort()
		}
	}
	if err != nil {
		return nil, p2p.Errorf(p2p.CodeUnavailable, "record ontology version: %v", err)
	}
	a.log.Info("ontology stored", "from", current, "to", v, "terms", written)
	return &wire.OntologySyncResponse{From: int32(current), To: int32(v), TermsWritten: uint32(written)}, nil
}
