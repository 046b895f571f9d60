package activities

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/arrowconv"
	"github.com/syndb/federation/internal/domain"
)

// axonTypes is a compartment table with a parent.
var axonTypes = map[string]string{"dataset_id": "UUID", "cid": "UUID", "parent_id": "Nullable(UUID)",
	"voxel_volume": "Nullable(Float64)"}

// TestCSVProblems: each fault a CSV file can have is reported once, at
// its row and column, and a file with a fault loads nothing.
func TestCSVProblems(t *testing.T) {
	t.Parallel()
	dataset, other, cid := uuid.New(), uuid.New(), uuid.New().String()
	for _, tc := range []struct {
		name, in   string
		rows, row  int64
		column     string
		problem    string
		wantLoaded int64
	}{
		{"good, dataset filled in", "cid,voxel_volume\n" + cid + ",1.5\n" + cid + ",\n", 2, 0, "", "", 2},
		{"good, dataset given", "dataset_id,cid\n" + dataset.String() + "," + cid + "\n", 1, 0, "", "", 1},
		{"unknown column", "cid,colour\n" + cid + ",red\n", 0, 0, "colour", `table axon has no column "colour"`, 0},
		{"column twice", "cid,cid\n" + cid + "," + cid + "\n", 0, 0, "cid", "column appears twice", 0},
		{"required column missing", "voxel_volume\n1\n", 0, 0, "cid", "required column missing", 0},
		{"bad UUID", "cid\nnot-a-uuid\n", 1, 1, "cid", "", 0},
		{"bad number", "cid,voxel_volume\n" + cid + ",big\n", 1, 1, "voxel_volume", "", 0},
		{"another dataset", "dataset_id,cid\n" + other.String() + "," + cid + "\n", 1, 1, "dataset_id", "belongs to another dataset than the job's " + dataset.String(), 0},
		{"a short record", "cid,voxel_volume\n" + cid + ",1\n" + cid + "\n", 1, 2, "", "malformed CSV", 0},
		{"no header", "", 0, 0, "", "no CSV header", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fileCheck{table: "axon", types: axonTypes, dataset: dataset, limits: DefaultUploadLimits, batch: 1000}
			rep := domain.EtlReport{}
			var loaded int64
			err := c.readCSV(t.Context(), strings.NewReader(tc.in), &rep, func(rec arrow.RecordBatch) error {
				loaded += rec.NumRows()
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, tc.rows, rep.Rows)
			require.Equal(t, tc.wantLoaded, loaded)
			if tc.wantLoaded > 0 {
				require.Zero(t, rep.ProblemCount, problemText(rep))
				require.Contains(t, rep.Columns, "dataset_id")
				return
			}
			require.Equal(t, int64(1), rep.ProblemCount, problemText(rep))
			require.Equal(t, tc.row, rep.Problems[0].Row)
			require.Equal(t, tc.column, rep.Problems[0].Column)
			require.Contains(t, rep.Problems[0].Problem, tc.problem)
		})
	}
}

// TestParentCheck: parent_id must name a neuron of the dataset on the
// target; a neuron has none; an empty parent is no fault.
func TestParentCheck(t *testing.T) {
	t.Parallel()
	dataset, known, unknown := uuid.New(), uuid.New(), uuid.New()
	for _, tc := range []struct {
		name, table, parents string
		want                 []domain.Problem
	}{
		{"known parent", "axon", known.String(), nil},
		{"no parent", "axon", "", nil},
		{"unknown parent", "axon", unknown.String(), []domain.Problem{{Row: 1, Column: "parent_id", Value: unknown.String(),
			Problem: "no neuron with this cid in dataset " + dataset.String() + " on lab-a"}}},
		{"a neuron with a parent", "neuron", known.String(), []domain.Problem{{Row: 1, Column: "parent_id", Value: known.String(),
			Problem: "a neuron has no parent"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fileCheck{table: tc.table, types: axonTypes, dataset: dataset, limits: DefaultUploadLimits, batch: 1000}
			pc := parentCheck{table: tc.table, dataset: dataset.String(), node: "lab-a", neurons: map[uuid.UUID]bool{known: true}}
			rep := domain.EtlReport{}
			in := "cid,parent_id\n" + uuid.NewString() + "," + tc.parents + "\n"
			require.NoError(t, c.readCSV(t.Context(), strings.NewReader(in), &rep, func(rec arrow.RecordBatch) error {
				return pc.check(rec, 0, &rep)
			}))
			require.Equal(t, tc.want, rep.Problems)
		})
	}
}

// TestParquetColumns: a Parquet file's columns are checked against the
// table before any row is read.
func TestParquetColumns(t *testing.T) {
	t.Parallel()
	field := func(name, chType string) arrow.Field {
		typ, err := arrowconv.ArrowType(chType)
		require.NoError(t, err)
		return arrow.Field{Name: name, Type: typ, Nullable: true}
	}
	for _, tc := range []struct {
		name     string
		fields   []arrow.Field
		column   string
		problem  string
		nullable map[string]bool
	}{
		{"good", []arrow.Field{field("dataset_id", "UUID"), field("cid", "UUID"), field("parent_id", "Nullable(UUID)")}, "", "",
			map[string]bool{"dataset_id": false, "cid": false, "parent_id": true}},
		{"no dataset_id", []arrow.Field{field("cid", "UUID")}, "dataset_id", "a Parquet file must carry dataset_id", nil},
		{"unknown column", []arrow.Field{field("dataset_id", "UUID"), field("cid", "UUID"), field("colour", "String")}, "colour",
			`table axon has no column "colour"`, nil},
		{"wrong type", []arrow.Field{field("dataset_id", "UUID"), field("cid", "String")}, "cid", "the table needs", nil},
		{"required column missing", []arrow.Field{field("dataset_id", "UUID")}, "cid", "required column missing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep := domain.EtlReport{}
			nullable, err := parquetColumns(arrow.NewSchema(tc.fields, nil), "axon", axonTypes, &rep)
			require.NoError(t, err)
			if tc.problem == "" {
				require.Zero(t, rep.ProblemCount, problemText(rep))
				require.Equal(t, tc.nullable, nullable)
				return
			}
			require.Equal(t, int64(1), rep.ProblemCount, problemText(rep))
			require.Equal(t, tc.column, rep.Problems[0].Column)
			require.Contains(t, rep.Problems[0].Problem, tc.problem)
		})
	}
}
