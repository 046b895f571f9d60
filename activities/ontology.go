package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/ontology"
	"github.com/syndb/federation/internal/p2p"
	"github.com/syndb/federation/internal/wire"
)

// ontologyStore is what the ontology activities need of PostgreSQL.
type ontologyStore interface {
	SetOntologyTarget(ctx context.Context, version int, checksum, workflowID string) error
	RecordOntologyVersion(ctx context.Context, cluster string, version int, checksum, workflowID string) error
}

// Ontology holds the activities of the ontology sync workflow. The ontology
// itself is the hub's (schemas/ontology): only its version travels in
// workflow payloads, the terms go straight to the nodes.
type Ontology struct {
	store ontologyStore
	nodes nodeCaller
	onto  *ontology.Ontology
}

// NewOntology returns the ontology activities, pushing onto.
func NewOntology(st ontologyStore, nodes nodeCaller, onto *ontology.Ontology) *Ontology {
	return &Ontology{store: st, nodes: nodes, onto: onto}
}

// PrepareOntology checks that the hub holds the ontology version asked for
// and, unless the sync is a catch-up, records it as the fleet's target, so
// nodes that are away now are caught up when they register.
func (a *Ontology) PrepareOntology(ctx context.Context, p domain.PrepareOntologyParams) (domain.PrepareOntologyResult, error) {
	if err := a.check(p.Version); err != nil {
		return domain.PrepareOntologyResult{}, err
	}
	if !p.CatchUp {
		if err := a.store.SetOntologyTarget(ctx, a.onto.Version, a.onto.Checksum, activity.GetInfo(ctx).WorkflowExecution.ID); err != nil {
			return domain.PrepareOntologyResult{}, err
		}
	}
	return domain.PrepareOntologyResult{Version: a.onto.Version, Checksum: a.onto.Checksum, Terms: len(a.onto.Terms), Kinds: a.onto.Kinds()}, nil
}

func (a *Ontology) check(version int) error {
	if version != a.onto.Version {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the hub holds ontology version %d, not %d", a.onto.Version, version), domain.ErrTypeInvalid, nil)
	}
	return nil
}

// SyncNodeOntology sends the ontology to one node, which stores it once
// (a node that holds the version already writes nothing), and records the
// version the node holds. A node that holds the version with other content
// is in drift and a node that holds a newer version refuses an older one:
// neither is retried.
func (a *Ontology) SyncNodeOntology(ctx context.Context, p domain.SyncNodeOntologyParams) (domain.SyncNodeOntologyResult, error) {
	if err := a.check(p.Version); err != nil {
		return domain.SyncNodeOntologyResult{}, err
	}
	start := time.Now()
	var resp wire.OntologySyncResponse
	stopBeats := heartbeat(ctx, func() any { return p.Node.Name })
	err := a.nodes.Call(ctx, p.Node.PeerID, p.Node.Addrs, p2p.OntologySync, a.onto.Request(), &resp)
	stopBeats()
	if p2p.IsCode(err, p2p.CodeDrift) {
		activity.GetLogger(ctx).Warn("node ontology drift: left untouched", "node", p.Node.Name, "version", p.Version, "err", err)
	}
	if err != nil {
		return domain.SyncNodeOntologyResult{}, classify(fmt.Errorf("ontology sync of %s: %w", p.Node.Name, err))
	}
	to := int(resp.GetTo())
	checksum := ""
	if to == a.onto.Version {
		checksum = a.onto.Checksum
	}
	if err := a.store.RecordOntologyVersion(ctx, p.Node.Name, to, checksum, p.WorkflowID); err != nil {
		return domain.SyncNodeOntologyResult{}, err
	}
	res := domain.SyncNodeOntologyResult{From: int(resp.GetFrom()), To: to, TermsWritten: int(resp.GetTermsWritten())}
	activity.GetLogger(ctx).Info("node ontology synced", "node", p.Node.Name, "from", res.From, "to", res.To,
		"terms_written", res.TermsWritten, "took", time.Since(start))
	return res, nil
}
