package workers

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/syndb/federation/activities"
)

// registerCatalog registers the activities of catalog and ontology sync
// (their workflows are registered by workflows.Register).
func registerCatalog(w worker.Registry, catalog *activities.Catalog, onto *activities.Ontology) {
	w.RegisterActivityWithOptions(catalog.SyncNodeCatalog, activity.RegisterOptions{Name: activities.SyncNodeCatalogName})
	w.RegisterActivityWithOptions(onto.PrepareOntology, activity.RegisterOptions{Name: activities.PrepareOntologyName})
	w.RegisterActivityWithOptions(onto.SyncNodeOntology, activity.RegisterOptions{Name: activities.SyncNodeOntologyName})
}
