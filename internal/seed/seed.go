// Package seed fills a warehouse with synthetic SynDB datasets, so a fresh
// federation has data to query. Seeding is idempotent: datasets are keyed by
// deterministic IDs and a dataset already present is skipped.
package seed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/migrate"
)

// SchemaVersion is the schema the seed data needs. Seeding brings a warehouse
// that is behind up to it (and no further: later migrations are left to
// schema sync).
const SchemaVersion = 2

// Compartments are the compartment tables, in the order rows are generated.
var Compartments = []string{
	"neuron", "axon", "dendrite", "dendritic_spine", "pre_synapse", "post_synapse",
	"synapse", "vesicle", "mitochondria", "endoplasmic_reticulum",
}

// Options controls what Seed writes.
type Options struct {
	// Node names the lab; it goes into dataset names and IDs.
	Node string
	// Datasets is the number of datasets to write.
	Datasets int
	// Rows is the number of rows per compartment table per dataset.
	Rows int
	// Every row's mesh metrics are those of an icosphere of its
	// voxel_radius. Objects, when set, is the hub's S3: the first MeshRows
	// rows of every compartment table of every dataset get that mesh, as a
	// GLB in MeshBucket, and their metrics are measured from the GLB and
	// their s3_mesh_location is its. The other rows, and every row without
	// Objects, have no mesh stored (s3_mesh_location NULL).
	Objects    ObjectStore
	MeshBucket string
	MeshRows   int
}

// Result reports what Seed did.
type Result struct {
	SchemaFrom, SchemaTo int
	Created, Skipped     int
	Rows                 int
	// Meshes are the meshes written, for the hub's record of them.
	Meshes []Mesh
}

var namespace = uuid.MustParse("6f1c7a52-0e59-4d7b-9a54-5e2b7f1d9c10")

// DatasetID returns the deterministic ID of a node's i-th seeded dataset.
func DatasetID(node string, i int) uuid.UUID {
	return uuid.NewSHA1(namespace, fmt.Appendf(nil, "%s/%d", node, i))
}

// Seed writes opts.Datasets synthetic datasets into the warehouse behind conn.
func Seed(ctx context.Context, conn driver.Conn, migs []migrate.Migration, opts Options) (Result, error) {
	if opts.Datasets < 1 || opts.Rows < 1 {
		return Result{}, fmt.Errorf("datasets (%d) and rows (%d) must be at least 1", opts.Datasets, opts.Rows)
	}
	var res Result
	v, err := migrate.Version(ctx, conn)
	if err != nil {
		return res, err
	}
	res.SchemaFrom, res.SchemaTo = v, v
	if opts.Objects != nil {
		if err := ensureBucket(ctx, opts.Objects, opts.MeshBucket); err != nil {
			return res, err
		}
	}
	if v < SchemaVersion {
		mr, err := migrate.Apply(ctx, conn, migs, SchemaVersion)
		if err != nil {
			return res, fmt.Errorf("prepare schema for seeding: %w", err)
		}
		res.SchemaTo = mr.To
	}
	for i := range opts.Datasets {
		id := DatasetID(opts.Node, i)
		var n uint64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM datasets WHERE dataset_id = toUUID('%s')", id)).Scan(&n); err != nil {
			return res, fmt.Errorf("look up dataset %s: %w", id, err)
		}
		if n > 0 {
			res.Skipped++
			continue
		}
		rows, meshes, err := writeDataset(ctx, conn, opts, i, id)
		if err != nil {
			return res, err
		}
		res.Created++
		res.Rows += rows
		res.Meshes = append(res.Meshes, meshes...)
	}
	return res, nil
}

var (
	animals     = []string{"mouse", "rat", "zebrafish", "drosophila", "macaque"}
	microscopy  = []string{"serial-section TEM", "FIB-SEM", "SBF-SEM", "expansion microscopy", "cryo-ET"}
	regions     = []string{"hippocampus CA1", "visual cortex L2/3", "cerebellum", "olfactory bulb", "mushroom body"}
	transmitter = []string{"glutamate", "GABA", "acetylcholine", "dopamine"}
)

func writeDataset(ctx context.Context, conn driver.Conn, opts Options, i int, id uuid.UUID) (int, []Mesh, error) {
	rng := rand.New(rand.NewPCG(uint64(id.ID()), uint64(i)+1)) //nolint:gosec // synthetic data, not security
	batch, err := conn.PrepareBatch(ctx, `INSERT INTO datasets (dataset_id, name, owner, animal, brain_region,
		genetic_manipulations, microscopy, publication_doi, notes, created_at)`)
	if err != nil {
		return 0, nil, fmt.Errorf("prepare dataset insert: %w", err)
	}
	err = batch.Append(id, fmt.Sprintf("%s synthetic volume %d", opts.Node, i+1), opts.Node+" lab",
		pick(rng, animals), pick(rng, regions), []string{"Thy1-GFP"}, pick(rng, microscopy),
		fmt.Sprintf("10.0000/syndb.%s.%d", opts.Node, i+1), "synthetic data from syndb seed", time.Now().UTC().Truncate(time.Second))
	if err != nil {
		_ = batch.Abort()
		return 0, nil, fmt.Errorf("append dataset %s: %w", id, err)
	}
	if err := batch.Send(); err != nil {
		return 0, nil, fmt.Errorf("insert dataset %s: %w", id, err)
	}
	total := 0
	var meshes []Mesh
	neurons := make([]uuid.UUID, opts.Rows)
	for k := range neurons {
		neurons[k] = uuid.NewSHA1(id, fmt.Appendf(nil, "neuron/%d", k))
	}
	for _, table := range Compartments {
		c := compartment{table: table, dataset: id, neurons: neurons, rows: opts.Rows, opts: opts}
		n, ms, err := c.write(ctx, conn, rng)
		if err != nil {
			return total, meshes, err
		}
		total += n
		meshes = append(meshes, ms...)
	}
	return total, meshes, nil
}

// compartment is one compartment table's rows of one dataset.
type compartment struct {
	table   string
	dataset uuid.UUID
	neurons []uuid.UUID
	rows    int
	opts    Options
}

// write inserts the rows, after uploading their meshes: a row's
// s3_mesh_location never points at nothing.
func (c compartment) write(ctx context.Context, conn driver.Conn, rng *rand.Rand) (int, []Mesh, error) {
	table, dataset, neurons, rows := c.table, c.dataset, c.neurons, c.rows
	cols := `dataset_id, cid, parent_id, parent_enum, voxel_volume, voxel_radius, mesh_volume,
		mesh_surface_area, mesh_area_volume_ratio, mesh_sphericity, centroid_x, centroid_y, centroid_z, s3_mesh_location`
	extra := ""
	switch table {
	case "synapse":
		extra = ", pre_id, post_id, cleft_width, neurotransmitter"
	case "vesicle":
		extra = ", distance_to_active_zone, minimum_normal_length, neurotransmitter"
	case "neuron":
		extra = ", neuron_type, terminal_count"
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+cols+extra+")")
	if err != nil {
		return 0, nil, fmt.Errorf("prepare %s insert: %w", table, err)
	}
	var uploads []seedMesh
	for k := range rows {
		cid := uuid.NewSHA1(dataset, fmt.Appendf(nil, "%s/%d", table, k))
		if table == "neuron" {
			cid = neurons[k]
		}
		var parent *uuid.UUID
		var parentEnum *uint8
		if table != "neuron" {
			p := neurons[rng.IntN(len(neurons))]
			e := uint8(1)
			parent, parentEnum = &p, &e
		}
		vol := 0.01 + rng.ExpFloat64()*0.5
		radius := 0.1 + rng.Float64()
		// Drawn whether a row has a mesh or not, so the other columns'
		// values do not depend on it.
		_, _ = rng.Float64(), rng.Float64()
		x, y, z := rng.Float64()*1e4, rng.Float64()*1e4, rng.Float64()*5e3
		mm, loc := rowMetrics(k, radius), (*string)(nil)
		if c.opts.Objects != nil && k < c.opts.MeshRows {
			m, err := newMesh(c.opts.Node, dataset, table, cid, k, radius)
			if err != nil {
				_ = batch.Abort()
				return 0, nil, err
			}
			l := domain.MeshLocation(c.opts.MeshBucket, m.Spec.Key())
			mm, loc = m.Reading.Metrics, &l
			uploads = append(uploads, m)
		}
		args := []any{dataset, cid, parent, parentEnum, &vol, &radius, &mm.Volume, &mm.SurfaceArea, &mm.AreaVolumeRatio,
			&mm.Sphericity, &x, &y, &z, loc}
		switch table {
		case "synapse":
			pre, post := neurons[rng.IntN(len(neurons))], neurons[rng.IntN(len(neurons))]
			cleft := 15 + rng.NormFloat64()*3
			nt := pick(rng, transmitter)
			args = append(args, &pre, &post, &cleft, &nt)
		case "vesicle":
			d := rng.ExpFloat64() * 200
			l := 20 + rng.NormFloat64()*5
			nt := pick(rng, transmitter)
			args = append(args, &d, &l, &nt)
		case "neuron":
			nt := pick(rng, []string{"pyramidal", "interneuron", "granule", "Purkinje"})
			tc := uint32(rng.IntN(200))
			args = append(args, &nt, &tc)
		}
		if err := batch.Append(args...); err != nil {
			_ = batch.Abort()
			return 0, nil, fmt.Errorf("append %s row: %w", table, err)
		}
	}
	if err := uploadMeshes(ctx, c.opts.Objects, c.opts.MeshBucket, uploads); err != nil {
		_ = batch.Abort()
		return 0, nil, err
	}
	if err := batch.Send(); err != nil {
		return 0, nil, fmt.Errorf("insert %s rows: %w", table, err)
	}
	meshes := make([]Mesh, len(uploads))
	for i, m := range uploads {
		meshes[i] = m.Mesh
	}
	return rows, meshes, nil
}

func pick(rng *rand.Rand, xs []string) string { return xs[rng.IntN(len(xs))] }
