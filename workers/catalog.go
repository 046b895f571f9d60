package workers

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/activities"
	"github.com/syndb/federation/internal/domain"
)

// registerCatalog registers the activities of catalog and ontology sync
// (their workflows are registered by workflows.Register).
func registerCatalog(w worker.Registry, catalog *activities.Catalog, onto *activities.Ontology) {
	w.RegisterActivityWithOptions(catalog.SyncNodeCatalog, activity.RegisterOptions{Name: domain.SyncNodeCatalogName})
	w.RegisterActivityWithOptions(onto.PrepareOntology, activity.RegisterOptions{Name: domain.PrepareOntologyName})
	w.RegisterActivityWithOptions(onto.SyncNodeOntology, activity.RegisterOptions{Name: domain.SyncNodeOntologyName})
}
