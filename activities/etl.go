package activities

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"go.temporal.io/sdk/temporal"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/health"
	"github.com/syndb/federation/internal/migrate"
)

// stagingStore is what the ETL activities need of the staging bucket.
type stagingStore interface {
	StatObject(ctx context.Context, bucket, object string, opts minio.StatObjectOptions) (minio.ObjectInfo, error)
	GetObject(ctx context.Context, bucket, object string, opts minio.GetObjectOptions) (*minio.Object, error)
	RemoveObject(ctx context.Context, bucket, object string, opts minio.RemoveObjectOptions) error
}

// Etl holds the activities of ETL jobs: a staged file is validated, then
// loaded into a node's warehouse or the hub's, and its dataset registered.
type Etl struct {
	store          clusterStore
	flight         nodeFlight
	staging        stagingStore
	bucket         string
	types          map[string]map[string]string
	warehouse      hubWarehouse
	refreshCatalog func(ctx context.Context, node string) error
	limits         UploadLimits
}

// EtlDeps are what the ETL activities need.
type EtlDeps struct {
	Store clusterStore
	Nodes nodeCaller
	// Staging holds the uploads, in StagingBucket.
	Staging       stagingStore
	StagingBucket string
	// Migrations give the tables' column types.
	Migrations []migrate.Migration
	// Warehouse is the hub's ClickHouse, for loads into domain.HubTarget; nil
	// refuses them.
	Warehouse hubWarehouse
	// RefreshCatalog starts the catalog sync of a node a dataset was
	// loaded into; nil skips it.
	RefreshCatalog func(ctx context.Context, node string) error
	// Limits bound what reading a staged file may cost; the zero value
	// means DefaultUploadLimits.
	Limits UploadLimits
}

// NewEtl returns the ETL activities.
func NewEtl(d EtlDeps) *Etl {
	if d.Limits == (UploadLimits{}) {
		d.Limits = DefaultUploadLimits
	}
	return &Etl{store: d.Store, flight: newNodeFlight(d.Nodes), staging: d.Staging, bucket: d.StagingBucket,
		types: migrate.ColumnTypes(d.Migrations), warehouse: d.Warehouse, refreshCatalog: d.RefreshCatalog, limits: d.Limits}
}

// sink is where a job's target loads: the hub's warehouse for domain.HubTarget,
// else the node over its Flight server.
func (a *Etl) sink(node domain.NodeRef) (sink, error) {
	if node.Name != domain.HubTarget {
		return nodeSink{flight: a.flight, node: node}, nil
	}
	if a.warehouse == nil {
		return nil, temporal.NewNonRetryableApplicationError("this worker has no hub warehouse", domain.ErrTypeInvalid, nil)
	}
	return hubSink{warehouse: a.warehouse, types: a.types}, nil
}

// EtlTarget finds where an ETL job loads: the hub's warehouse, or a
// registered, active and routable node.
func (a *Etl) EtlTarget(ctx context.Context, spec domain.EtlSpec) (domain.NodeRef, error) {
	if spec.Node == domain.HubTarget {
		hub := domain.NodeRef{Name: domain.HubTarget}
		_, err := a.sink(hub)
		return hub, err
	}
	cs, err := a.store.Clusters(ctx, true)
	if err != nil {
		return domain.NodeRef{}, err
	}
	for _, c := range cs {
		if c.Name != spec.Node {
			continue
		}
		if st, _ := health.ParseState(c.Health); !st.Routable() {
			return domain.NodeRef{}, fmt.Errorf("node %s is %s: the load waits for it", c.Name, c.Health)
		}
		return nodeRef(c), nil
	}
	return domain.NodeRef{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no registered node %q", spec.Node), domain.ErrTypeInvalid, nil)
}

// ValidateStaged checks the staged file against the table, streaming it:
// column names and types, required columns, every cell, the dataset, and
// the parent relation (parent_id must be a neuron of the dataset on the
// target, or of the file when it loads neurons). It loads nothing.
func (a *Etl) ValidateStaged(ctx context.Context, p domain.EtlParams) (domain.EtlReport, error) {
	rep := domain.EtlReport{Problems: []domain.Problem{}}
	var rows atomic.Int64
	stop := heartbeat(ctx, func() any { return map[string]any{"validated_rows": rows.Load()} })
	defer stop()
	s, err := a.sink(p.Node)
	if err != nil {
		return rep, err
	}
	pc := parentCheck{table: p.Spec.Table, dataset: p.Spec.Dataset.DatasetID, node: p.Node.Name, neurons: map[uuid.UUID]bool{}}
	if p.Spec.Table != "neuron" {
		if _, err := s.scan(ctx, "neuron", "cid", pc.dataset, func(id uuid.UUID) { pc.neurons[id] = true }); err != nil {
			return rep, err
		}
	}
	err = a.rows(ctx, p.Spec, &rep, func(rec arrow.RecordBatch) error {
		base := rows.Add(rec.NumRows()) - rec.NumRows()
		return pc.check(rec, base, &rep)
	})
	return rep, err
}

// errStagedChanged fails a load whose file is no longer the one validated.
func errStagedChanged() error {
	return temporal.NewNonRetryableApplicationError("the staged file changed since it was validated", domain.ErrTypeInvalid, nil)
}

// LoadStaged streams the validated file into the target's table, batch by
// batch (a node's over Flight, with a write ticket for that table and
// dataset that allows the rows the validation counted). A retry after the
// rows arrived loads nothing twice; a retry after a partial load stops and
// says so.
func (a *Etl) LoadStaged(ctx context.Context, p domain.EtlParams) (domain.EtlLoaded, error) {
	started := time.Now()
	var loaded atomic.Int64
	stop := heartbeat(ctx, func() any { return map[string]any{"loaded_rows": loaded.Load()} })
	defer stop()
	s, err := a.sink(p.Node)
	if err != nil {
		return domain.EtlLoaded{}, err
	}
	have, err := s.scan(ctx, p.Spec.Table, "cid", p.Spec.Dataset.DatasetID, func(uuid.UUID) {})
	if err != nil {
		return domain.EtlLoaded{}, err
	}
	switch {
	case have == p.Rows && have > 0:
		return domain.EtlLoaded{Rows: have, AlreadyLoaded: true, DurationMS: time.Since(started).Milliseconds()}, nil
	case have > 0:
		return domain.EtlLoaded{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"%s already holds %d rows of dataset %s in %s (the file has %d): remove them before loading again",
			p.Node.Name, have, p.Spec.Dataset.DatasetID, p.Spec.Table, p.Rows), domain.ErrTypeInvalid, nil)
	}
	var (
		out domain.EtlLoaded
		l   load
		rep domain.EtlReport
	)
	err = a.rows(ctx, p.Spec, &rep, func(rec arrow.RecordBatch) error {
		if l == nil {
			if p.Rows <= 0 {
				return errStagedChanged()
			}
			var err error
			if l, err = s.open(ctx, p.Spec.Table, p.Spec.Dataset.DatasetID, p.Rows, rec.Schema()); err != nil {
				return err
			}
		}
		out.Batches++
		loaded.Add(rec.NumRows())
		return l.write(ctx, rec)
	})
	if l != nil {
		defer l.close()
	}
	switch {
	case err != nil:
		return out, err
	case rep.ProblemCount > 0:
		return out, errStagedChanged()
	case l == nil:
		return out, nil // an empty file
	}
	if out.Rows, err = l.finish(ctx); err != nil {
		return out, err
	}
	out.DurationMS = time.Since(started).Milliseconds()
	if out.Rows != p.Rows {
		return out, fmt.Errorf("%s loaded %d rows of %d", p.Node.Name, out.Rows, p.Rows)
	}
	return out, nil
}

// datasetColumns are the columns RegisterDataset writes.
var datasetColumns = []string{"dataset_id", "name", "owner", "animal", "brain_region", "genetic_manipulations", "microscopy",
	"publication_doi", "notes", "created_at"}

// RegisterDataset writes the dataset's metadata into the target's datasets
// table (once: a dataset already there is left as it is).
func (a *Etl) RegisterDataset(ctx context.Context, p domain.EtlParams) (bool, error) {
	s, err := a.sink(p.Node)
	if err != nil {
		return false, err
	}
	d := p.Spec.Dataset
	have, err := s.scan(ctx, "datasets", "dataset_id", d.DatasetID, func(uuid.UUID) {})
	if err != nil || have > 0 {
		return false, err
	}
	rec, err := a.datasetRecord(d, time.Now().UTC().Truncate(time.Second))
	if err != nil {
		return false, err
	}
	defer rec.Release()
	l, err := s.open(ctx, "datasets", d.DatasetID, 1, rec.Schema())
	if err != nil {
		return false, err
	}
	defer l.close()
	if err := l.write(ctx, rec); err != nil {
		return false, err
	}
	if _, err := l.finish(ctx); err != nil {
		return false, fmt.Errorf("register dataset: %w", err)
	}
	return true, nil
}

// datasetRecord is the datasets row of d, created at created.
func (a *Etl) datasetRecord(d domain.DatasetMeta, created time.Time) (arrow.RecordBatch, error) {
	fields := make([]arrow.Field, len(datasetColumns))
	tcs := make([]*arrowconv.TextColumn, len(datasetColumns))
	for i, c := range datasetColumns {
		tc, err := arrowconv.NewTextColumn(a.types["datasets"][c])
		if err != nil {
			return nil, err
		}
		tcs[i], fields[i] = tc, arrow.Field{Name: c, Type: tc.ArrowType()}
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	manip := d.GeneticManipulations
	if manip == nil {
		manip = []string{}
	}
	vals := []any{uuid.MustParse(d.DatasetID), d.Name, d.Owner, d.Animal, d.BrainRegion, manip, d.Microscopy,
		d.PublicationDOI, d.Notes, created}
	for i, v := range vals {
		tcs[i].Append(b.Field(i), v)
	}
	return b.NewRecordBatch(), nil
}

// DeleteStaged removes the staged object once its rows are loaded.
func (a *Etl) DeleteStaged(ctx context.Context, p domain.EtlParams) error {
	if err := a.staging.RemoveObject(ctx, a.bucket, p.Spec.Object, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("remove staged %s: %w", p.Spec.Object, err)
	}
	return nil
}

// RefreshCatalog starts the catalog sync of the node a dataset was loaded
// into, so searches find it. The hub's own datasets are no node's catalog.
func (a *Etl) RefreshCatalog(ctx context.Context, p domain.EtlParams) error {
	s, err := a.sink(p.Node)
	if err != nil {
		return err
	}
	node := s.catalogNode()
	if a.refreshCatalog == nil || node == "" {
		return nil
	}
	if err := a.refreshCatalog(ctx, node); err != nil {
		return fmt.Errorf("refresh catalog of %s: %w", node, err)
	}
	return nil
}
