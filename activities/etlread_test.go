package activities

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/syndb/federation/internal/config"
	"github.com/syndb/federation/internal/domain"
	"github.com/syndb/federation/internal/etlfixture"
)

// neuronTypes is the part of the neuron table the fixtures write.
var neuronTypes = map[string]string{"dataset_id": "UUID", "cid": "UUID", "s3_mesh_location": "Nullable(String)",
	"voxel_volume": "Nullable(Float64)", "neuron_type": "Nullable(String)"}

// neuronCheck checks files of the neuron table for dataset under lim.
func neuronCheck(dataset uuid.UUID, lim UploadLimits) fileCheck {
	return fileCheck{table: "neuron", types: neuronTypes, dataset: dataset, limits: lim, batch: maxBatchRows}
}

// heapPeak samples the heap in use while fn runs and returns its peak
// above the heap before, and the bytes fn allocated in all (an upper bound
// of the peak, exact whatever the sampling misses).
func heapPeak(t *testing.T, fn func()) (peak, allocated uint64) {
	t.Helper()
	// A tight GC target while measuring, so the peak is the reader's live
	// memory rather than how much garbage the collector's pacing let pile
	// up over whatever heap earlier tests left.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var mu sync.Mutex
	top := before.HeapInuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				mu.Lock()
				top = max(top, m.HeapInuse)
				mu.Unlock()
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return max(top, after.HeapInuse) - before.HeapInuse, after.TotalAlloc - before.TotalAlloc
}

func writeFixture(t *testing.T, name string, fn func(io.Writer) error) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, fn(f))
	require.NoError(t, f.Close())
	return p
}

func problemText(rep domain.EtlReport) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		fmt.Fprintf(&b, "row %d column %s: %s\n", p.Row, p.Column, p.Problem)
	}
	return b.String()
}

// TestParquetCaps: the hostile Parquet files (and one that puts a
// value over the cell cap) fail validation with the cap they broke, in
// bounded memory. The bound is the allocation total, which caps the peak.
func TestParquetCaps(t *testing.T) {
	dataset := uuid.New()
	const bound = 64 << 20
	for _, tc := range []struct {
		name    string
		write   func(io.Writer) error
		column  string
		problem string
		row     int64
	}{
		{"three 200 MB strings", func(w io.Writer) error { return etlfixture.BigStrings(w, dataset, 3, 200<<20) },
			"s3_mesh_location", "a column chunk of 629145705 bytes uncompressed, over the 536870912-byte column-chunk cap (SYNDB_ETL_MAX_COLUMN_CHUNK_BYTES)", 0},
		{"a 20 MiB value", func(w io.Writer) error { return etlfixture.BigStrings(w, dataset, 1, 20<<20) },
			"s3_mesh_location", "a page over the 16777216-byte page cap (SYNDB_ETL_MAX_PAGE_BYTES)", 0},
		{"20 M declared rows", func(w io.Writer) error { return etlfixture.DeclaredRows(w, dataset, 20_000_000) },
			"", "the file declares 20000000 rows in", 0},
		{"a 2 MiB value", func(w io.Writer) error { return etlfixture.BigStrings(w, dataset, 3, 2<<20) },
			"s3_mesh_location", "a value of 2097152 bytes, over the 1048576-byte cell cap (SYNDB_ETL_MAX_CELL_BYTES)", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFixture(t, "f.parquet", tc.write)
			st, err := os.Stat(path)
			require.NoError(t, err)
			rep := domain.EtlReport{}
			loaded := 0
			peak, total := heapPeak(t, func() {
				err = neuronCheck(dataset, DefaultUploadLimits).readParquet(t.Context(), path, &rep,
					func(arrow.RecordBatch) error { loaded++; return nil })
			})
			require.NoError(t, err)
			t.Logf("%d-byte file: heap peak +%d KiB, allocated %d KiB; %s", st.Size(), peak>>10, total>>10, problemText(rep))
			require.Equal(t, int64(1), rep.ProblemCount, problemText(rep))
			require.Contains(t, rep.Problems[0].Problem, tc.problem)
			require.Equal(t, tc.column, rep.Problems[0].Column)
			require.Equal(t, tc.row, rep.Problems[0].Row)
			require.Zero(t, loaded, "nothing reaches the load")
			require.Less(t, total, uint64(bound), "validation allocates at most %d MiB", bound>>20)
		})
	}
}

// TestParquetDictionaryBatches: one 256 KiB dictionary value on each of
// 8 Ki rows decodes to 2 GiB; the batches are cut so each stays near
// MaxBatchBytes, and the heap's peak stays under 128 MiB.
func TestParquetDictionaryBatches(t *testing.T) {
	dataset := uuid.New()
	const rows, size = 8 << 10, 256 << 10
	path := writeFixture(t, "dict.parquet", func(w io.Writer) error { return etlfixture.Dictionary(w, dataset, rows, size) })
	rep := domain.EtlReport{}
	var batches, seen int64
	var err error
	peak, total := heapPeak(t, func() {
		err = neuronCheck(dataset, DefaultUploadLimits).readParquet(t.Context(), path, &rep, func(rec arrow.RecordBatch) error {
			batches++
			seen += rec.NumRows()
			return nil
		})
	})
	require.NoError(t, err)
	require.Zero(t, rep.ProblemCount, problemText(rep))
	t.Logf("%d rows in %d batches: heap peak +%d MiB, allocated %d MiB", seen, batches, peak>>20, total>>20)
	require.Equal(t, int64(rows), seen)
	require.Equal(t, int64(rows), rep.Rows)
	wantRows := DefaultUploadLimits.MaxBatchBytes / (size + 4 + 16 + 4 + 8 + 4)
	require.GreaterOrEqual(t, batches, int64(rows)/wantRows, "batches of at most %d rows", wantRows)
	require.Less(t, peak, uint64(128<<20))
}

// endless repeats s forever.
type endless struct{ s string }

func (e endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], e.s)
	}
	return n, nil
}

// TestCSVCaps: a cell over the cell cap and a record over the row cap (a
// quoted cell of line breaks that never ends) fail with the cap they
// broke, the endless one after reading only about the row cap; a UTF-8
// byte-order mark before the header is dropped.
func TestCSVCaps(t *testing.T) {
	dataset := uuid.New()
	target := neuronCheck(dataset, DefaultUploadLimits)
	target.batch = 1000
	cid := uuid.New()
	for _, tc := range []struct {
		name    string
		in      io.Reader
		problem string
		column  string
		row     int64
		rows    int64
	}{
		{"byte-order mark", strings.NewReader("\uFEFFcid,neuron_type\n" + cid.String() + ",pyramidal\n"), "", "", 0, 1},
		{"2 MiB cell", strings.NewReader("cid,neuron_type\n" + cid.String() + ",ok\n" + cid.String() + "," + strings.Repeat("z", 2<<20) + "\n"),
			"a cell of 2097152 bytes, over the 1048576-byte cell cap (SYNDB_ETL_MAX_CELL_BYTES)", "neuron_type", 2, 2},
		{"endless quoted cell", io.MultiReader(strings.NewReader("cid,neuron_type\n"+cid.String()+",\""), endless{"a\n"}),
			"a CSV record over the 8388608-byte row cap (SYNDB_ETL_MAX_ROW_BYTES)", "", 1, 0},
		{"endless header", endless{"c"}, "a CSV record over the 8388608-byte row cap", "", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := domain.EtlReport{}
			var got []arrow.RecordBatch
			var err error
			peak, total := heapPeak(t, func() {
				err = target.readCSV(t.Context(), tc.in, &rep, func(rec arrow.RecordBatch) error {
					rec.Retain()
					got = append(got, rec)
					return nil
				})
			})
			require.NoError(t, err)
			t.Logf("heap peak +%d KiB, allocated %d KiB; %s", peak>>10, total>>10, problemText(rep))
			require.Less(t, total, uint64(64<<20))
			require.Equal(t, tc.rows, rep.Rows)
			if tc.problem == "" {
				require.Zero(t, rep.ProblemCount, problemText(rep))
				require.Equal(t, []string{"cid", "neuron_type", "dataset_id"}, rep.Columns)
				require.Len(t, got, 1)
				require.Equal(t, `["pyramidal"]`, fmt.Sprint(got[0].Column(1)))
				got[0].Release()
				return
			}
			require.Equal(t, int64(1), rep.ProblemCount, problemText(rep))
			require.Contains(t, rep.Problems[0].Problem, tc.problem)
			require.Equal(t, tc.column, rep.Problems[0].Column)
			require.Equal(t, tc.row, rep.Problems[0].Row)
		})
	}
}

// TestCSVBatchBytes: rows of big cells are cut into batches of about
// MaxBatchBytes, however many rows a batch may hold.
func TestCSVBatchBytes(t *testing.T) {
	dataset := uuid.New()
	var b bytes.Buffer
	b.WriteString("cid,neuron_type\n")
	cell := strings.Repeat("n", 512<<10)
	for range 200 {
		fmt.Fprintf(&b, "%s,%s\n", uuid.New(), cell)
	}
	lim := DefaultUploadLimits
	lim.MaxBatchBytes = 8 << 20
	rep := domain.EtlReport{}
	var batches []int64
	err := neuronCheck(dataset, lim).readCSV(context.Background(), &b, &rep,
		func(rec arrow.RecordBatch) error { batches = append(batches, rec.NumRows()); return nil })
	require.NoError(t, err)
	require.Zero(t, rep.ProblemCount, problemText(rep))
	require.Equal(t, int64(200), rep.Rows)
	// 8 MiB / (512 KiB + 36 bytes) rows: the 16th row passes the budget.
	require.Equal(t, int64(16), batches[0], "%v", batches)
}

// TestUploadLimitsDefaults: the activities' defaults are config.ETL's.
func TestUploadLimitsDefaults(t *testing.T) {
	c, err := config.Load[config.ETL]()
	require.NoError(t, err)
	require.Equal(t, DefaultUploadLimits, UploadLimits{MaxUploadBytes: c.MaxUploadBytes, MaxCellBytes: c.MaxCellBytes,
		MaxRowBytes: c.MaxRowBytes, MaxPageBytes: c.MaxPageBytes, MaxColumnChunkBytes: c.MaxColumnChunkBytes,
		MinRowBytes: c.MinRowBytes, MaxBatchBytes: c.MaxBatchBytes})
}
