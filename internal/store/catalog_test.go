package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/devstack"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/store"
)

// catalogTestStore starts a private PostgreSQL for one test, opens the store
// on it (applying the hub schema) and registers the named active nodes.
func catalogTestStore(t *testing.T, nodes ...string) (*store.Store, *pgx.Conn) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	port, err := devstack.FreePort()
	require.NoError(t, err)
	dir := t.TempDir()
	pg := &devstack.Postgres{Dir: filepath.Join(dir, "pg"), Port: port, User: "syndb", Password: "syndb", Database: "syndb",
		Fast: true, LogFile: filepath.Join(dir, "postgres.log")}
	require.NoError(t, pg.Start(t.Context()))
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	st, err := store.Open(t.Context(), pg.DSN())
	require.NoError(t, err)
	t.Cleanup(st.Close)
	conn, err := pgx.Connect(t.Context(), pg.DSN())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	for _, n := range nodes {
		_, err := conn.Exec(t.Context(), `INSERT INTO clusters (name, peer_id) VALUES ($1, $2)`, n, "peer-"+n)
		require.NoError(t, err)
	}
	return st, conn
}

func dataset(name, notes string) store.CatalogDataset {
	return store.CatalogDataset{
		ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)), Name: name, Owner: "Ramón lab", Animal: "mouse",
		BrainRegion: "hippocampus CA1", GeneticManipulations: []string{"Thy1-GFP"}, Microscopy: "FIB-SEM",
		PublicationDOI: "10.1000/" + name, Notes: notes, CreatedAt: time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC),
		Tables: []store.TableRows{{Table: "synapse", Rows: 30}, {Table: "neuron", Rows: 10}},
	}
}

func search(t *testing.T, st *store.Store, q store.DatasetQuery) store.DatasetPage {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = store.DefaultDatasetLimit
	}
	page, err := st.SearchDatasets(t.Context(), q)
	require.NoError(t, err)
	return page
}

func names(page store.DatasetPage) []string {
	out := make([]string, 0, len(page.Datasets))
	for _, d := range page.Datasets {
		out = append(out, d.Node+"/"+d.Name)
	}
	return out
}

func TestCatalogStore(t *testing.T) {
	t.Parallel()
	st, conn := catalogTestStore(t, "lab-a", "lab-b")
	ctx := t.Context()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("replace adds, updates and removes", func(t *testing.T) {
		a, b, c := dataset("alpha", ""), dataset("beta", ""), dataset("gamma", "")
		ch, err := st.ReplaceCatalog(ctx, "lab-a", []store.CatalogDataset{a, b, c}, t0, "wf-1")
		require.NoError(t, err)
		require.Equal(t, domain.CatalogChange{Datasets: 3, Added: 3, Rows: 120}, ch)

		got, err := st.Dataset(ctx, "lab-a", a.ID)
		require.NoError(t, err)
		require.Equal(t, "lab-a", got.Node)
		require.Equal(t, a.ID.String(), got.DatasetID)
		require.Equal(t, []store.TableRows{{Table: "neuron", Rows: 10}, {Table: "synapse", Rows: 30}}, got.Tables, "tables by name")
		require.Equal(t, uint64(40), got.TotalRows)
		require.Equal(t, []string{"Thy1-GFP"}, got.GeneticManipulations)
		require.Equal(t, "10.1000/alpha", got.PublicationDOI)
		require.Equal(t, a.CreatedAt, *got.CreatedAt)
		require.Nil(t, got.Rank)
		firstUpdate := got.UpdatedAt

		// Again, unchanged: nothing written, updated_at stays.
		ch, err = st.ReplaceCatalog(ctx, "lab-a", []store.CatalogDataset{a, b, c}, t0.Add(time.Minute), "wf-2")
		require.NoError(t, err)
		require.Equal(t, domain.CatalogChange{Datasets: 3, Rows: 120}, ch)
		got, err = st.Dataset(ctx, "lab-a", a.ID)
		require.NoError(t, err)
		require.Equal(t, firstUpdate, got.UpdatedAt)

		// b changes, c is gone, d is new.
		b.Notes = "re-segmented"
		b.Tables = append(b.Tables, store.TableRows{Table: "vesicle", Rows: 5})
		d := dataset("delta", "")
		ch, err = st.ReplaceCatalog(ctx, "lab-a", []store.CatalogDataset{a, b, d}, t0.Add(2*time.Minute), "wf-3")
		require.NoError(t, err)
		require.Equal(t, domain.CatalogChange{Datasets: 3, Added: 1, Updated: 1, Removed: 1, Rows: 125}, ch)
		_, err = st.Dataset(ctx, "lab-a", c.ID)
		require.ErrorIs(t, err, domain.ErrNotFound)
		got, err = st.Dataset(ctx, "lab-a", b.ID)
		require.NoError(t, err)
		require.Equal(t, "re-segmented", got.Notes)
		require.Len(t, got.Tables, 3)

		// A catalog fetched before the one written is stale: nothing changes.
		ch, err = st.ReplaceCatalog(ctx, "lab-a", nil, t0.Add(time.Minute), "wf-late")
		require.NoError(t, err)
		require.True(t, ch.Stale)
		require.Len(t, search(t, st, store.DatasetQuery{Node: "lab-a"}).Datasets, 3)

		// Another node's catalog is its own: the same dataset ID on lab-b
		// is another row, and emptying lab-b leaves lab-a alone.
		ch, err = st.ReplaceCatalog(ctx, "lab-b", []store.CatalogDataset{a}, t0, "wf-b")
		require.NoError(t, err)
		require.Equal(t, 1, ch.Added)
		ch, err = st.ReplaceCatalog(ctx, "lab-b", nil, t0.Add(time.Minute), "wf-b2")
		require.NoError(t, err)
		require.Equal(t, domain.CatalogChange{Removed: 1}, ch)
		require.Len(t, search(t, st, store.DatasetQuery{Node: "lab-a"}).Datasets, 3)

		_, err = st.ReplaceCatalog(ctx, "lab-z", []store.CatalogDataset{a}, t0, "wf-z")
		require.Error(t, err, "an unknown node has no catalog")
		_, err = conn.Exec(ctx, `DELETE FROM datasets; DELETE FROM catalog_syncs`)
		require.NoError(t, err)
	})

	t.Run("search ranks, filters and pages", func(t *testing.T) {
		named := dataset("cerebellar granule cells", "")
		noted := dataset("volume 7", "includes a few cerebellar granule cells at the edge")
		rat := dataset("rat cortex", "")
		rat.Animal, rat.Microscopy = "rat", "SBF-SEM"
		_, err := st.ReplaceCatalog(ctx, "lab-a", []store.CatalogDataset{noted, named}, t0, "wf")
		require.NoError(t, err)
		_, err = st.ReplaceCatalog(ctx, "lab-b", []store.CatalogDataset{rat}, t0, "wf")
		require.NoError(t, err)

		page := search(t, st, store.DatasetQuery{Text: "cerebellar granule"})
		require.Equal(t, []string{"lab-a/cerebellar granule cells", "lab-a/volume 7"}, names(page))
		require.Equal(t, 2, page.Total)
		require.Greater(t, *page.Datasets[0].Rank, *page.Datasets[1].Rank, "a name match ranks above a notes match")

		// Stemming and websearch syntax.
		require.Equal(t, []string{"lab-a/cerebellar granule cells", "lab-a/volume 7"}, names(search(t, st, store.DatasetQuery{Text: "granule cell"})))
		require.Equal(t, []string{"lab-a/cerebellar granule cells"}, names(search(t, st, store.DatasetQuery{Text: `"cerebellar granule" -edge`})))
		// Fields other than the name: owner, DOI, genetics.
		require.Len(t, search(t, st, store.DatasetQuery{Text: "Ramón"}).Datasets, 3)
		require.Len(t, search(t, st, store.DatasetQuery{Text: "Thy1-GFP"}).Datasets, 3)

		// Junk and stop words match nothing.
		for _, q := range []string{"zzqxjv", "the", "!!! ???"} {
			page := search(t, st, store.DatasetQuery{Text: q})
			require.Empty(t, page.Datasets, q)
			require.Zero(t, page.Total, q)
		}

		// Filters are exact and combine with text.
		require.Equal(t, []string{"lab-b/rat cortex"}, names(search(t, st, store.DatasetQuery{Animal: "rat"})))
		require.Empty(t, search(t, st, store.DatasetQuery{Animal: "Rat"}).Datasets, "filters are exact")
		require.Equal(t, []string{"lab-b/rat cortex"}, names(search(t, st, store.DatasetQuery{Microscopy: "SBF-SEM"})))
		require.Equal(t, []string{"lab-b/rat cortex"}, names(search(t, st, store.DatasetQuery{Node: "lab-b"})))
		require.Empty(t, search(t, st, store.DatasetQuery{Text: "cerebellar", Node: "lab-b"}).Datasets)
		require.Len(t, search(t, st, store.DatasetQuery{Text: "cerebellar", Animal: "mouse", Microscopy: "FIB-SEM"}).Datasets, 2)

		// No text: everything by name, paged, each page with the total.
		all := search(t, st, store.DatasetQuery{})
		require.Equal(t, []string{"lab-a/cerebellar granule cells", "lab-b/rat cortex", "lab-a/volume 7"}, names(all))
		require.Nil(t, all.Datasets[0].Rank)
		p2 := search(t, st, store.DatasetQuery{Limit: 2, Offset: 2})
		require.Equal(t, []string{"lab-a/volume 7"}, names(p2))
		require.Equal(t, 3, p2.Total)
		past := search(t, st, store.DatasetQuery{Limit: 2, Offset: 10})
		require.Empty(t, past.Datasets)
		require.Equal(t, 3, past.Total, "the total is known past the last page")

		_, err = st.SearchDatasets(ctx, store.DatasetQuery{Limit: 0})
		require.Error(t, err)
		_, err = st.SearchDatasets(ctx, store.DatasetQuery{Limit: store.MaxDatasetLimit + 1})
		require.Error(t, err)
		_, err = st.SearchDatasets(ctx, store.DatasetQuery{Limit: 1, Offset: -1})
		require.Error(t, err)

		// A revoked node's datasets leave the search.
		_, err = conn.Exec(ctx, `UPDATE clusters SET status = 'revoked' WHERE name = 'lab-b'`)
		require.NoError(t, err)
		require.Empty(t, search(t, st, store.DatasetQuery{Animal: "rat"}).Datasets)
		_, err = st.Dataset(ctx, "lab-b", rat.ID)
		require.ErrorIs(t, err, domain.ErrNotFound)
		_, err = conn.Exec(ctx, `UPDATE clusters SET status = 'active' WHERE name = 'lab-b'`)
		require.NoError(t, err)
	})

	t.Run("ontology versions", func(t *testing.T) {
		target, err := st.OntologyTarget(ctx)
		require.NoError(t, err)
		require.Zero(t, target.Version, "no sync yet")
		require.NoError(t, st.SetOntologyTarget(ctx, 2, "sum2", "ontology-sync-v2"))
		target, err = st.OntologyTarget(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, target.Version)
		require.Equal(t, "ontology-sync-v2", target.WorkflowID)

		v, err := st.ClusterOntologyVersion(ctx, "lab-a")
		require.NoError(t, err)
		require.Zero(t, v)
		require.NoError(t, st.RecordOntologyVersion(ctx, "lab-a", 2, "sum2", "ontology-sync-v2"))
		require.NoError(t, st.RecordOntologyVersion(ctx, "lab-a", 1, "sum1", "late-retry"), "an older version is ignored, not an error")
		v, err = st.ClusterOntologyVersion(ctx, "lab-a")
		require.NoError(t, err)
		require.Equal(t, 2, v, "versions only go forward")
		require.ErrorIs(t, st.RecordOntologyVersion(ctx, "lab-z", 2, "sum2", "x"), domain.ErrNotFound)

		nodes, err := st.ClusterOntologies(ctx)
		require.NoError(t, err)
		require.Len(t, nodes, 2)
		require.Equal(t, "lab-a", nodes[0].Cluster)
		require.Equal(t, 2, nodes[0].Version)
		require.NotNil(t, nodes[0].SyncedAt)
		require.Equal(t, store.ClusterOntology{Cluster: "lab-b"}, nodes[1], fmt.Sprintf("%+v", nodes[1]))
	})
}
