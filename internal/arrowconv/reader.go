package arrowconv

import (
	"fmt"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Batch bounds of a Reader: a batch ends at DefaultBatchRows rows, or once
// its values reach about DefaultBatchBytes, whichever comes first. The byte
// bound keeps one batch (one Flight message) well under gRPC's default 4 MiB
// receive limit however wide the table.
const (
	DefaultBatchRows  = 64 << 10
	DefaultBatchBytes = 3 << 20
)

// Reader is an array.RecordReader over the rows of a running ClickHouse
// query. It scans the rows into Arrow builders one batch at a time, so it
// holds at most one batch in memory. Releasing it closes the rows.
type Reader struct {
	refs    atomic.Int64
	rows    driver.Rows
	schema  *arrow.Schema
	dests   []any
	appends []func()
	// rowBytes is the size of a row's fixed-size values; sizes are the
	// codecs and scan targets of the others.
	rowBytes int
	sizes    []sized
	bld      *array.RecordBuilder
	maxRows  int
	maxBytes int
	cur      arrow.RecordBatch
	err      error
	done     bool
	total    int64
}

var _ array.RecordReader = (*Reader)(nil)

// NewReader returns a Reader of rows, whose columns are named names and
// have ClickHouse types chTypes (as system.columns gives them). A batch
// holds at most batchRows rows (DefaultBatchRows when batchRows ≤ 0) and
// about DefaultBatchBytes. mem allocates the batches (the Go allocator when
// nil). On error, rows is left to the caller; otherwise Release closes it.
func NewReader(rows driver.Rows, names, chTypes []string, batchRows int, mem memory.Allocator) (*Reader, error) {
	schema, err := Schema(names, chTypes)
	if err != nil {
		return nil, err
	}
	got := rows.Columns()
	if len(got) != len(names) {
		return nil, fmt.Errorf("query returns %d columns, want %d (%v)", len(got), len(names), names)
	}
	for i, n := range got {
		if n != names[i] {
			return nil, fmt.Errorf("query column %d is %q, want %q", i, n, names[i])
		}
	}
	if batchRows <= 0 {
		batchRows = DefaultBatchRows
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	r := &Reader{rows: rows, schema: schema, maxRows: batchRows, maxBytes: DefaultBatchBytes,
		bld: array.NewRecordBuilder(mem, schema)}
	r.refs.Store(1)
	for i, t := range chTypes {
		pt, _ := parseType(t) // parsed by Schema already
		c := newCodec(pt)
		dest := c.newDest()
		r.dests = append(r.dests, dest)
		r.appends = append(r.appends, c.bind(r.bld.Field(i), dest))
		if w, ok := c.fixedSize(); ok {
			r.rowBytes += w
		} else {
			r.sizes = append(r.sizes, sized{c, dest})
		}
	}
	return r, nil
}

// sized is a column whose values vary in size.
type sized struct {
	codec codec
	dest  any
}

// SetMaxBatchBytes changes the byte bound of a batch (≤ 0: none).
func (r *Reader) SetMaxBatchBytes(n int) { r.maxBytes = n }

// Retain adds a reference.
func (r *Reader) Retain() { r.refs.Add(1) }

// Release drops a reference; the last one frees the current batch and the
// builders and closes the rows.
func (r *Reader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.bld.Release()
	_ = r.rows.Close()
}

// Schema is the schema of every batch.
func (r *Reader) Schema() *arrow.Schema { return r.schema }

// Rows is the number of rows read so far.
func (r *Reader) Rows() int64 { return r.total }

// Next reads the next batch; false at the end of the rows or on error (see
// Err). The previous batch is released unless the caller retained it.
func (r *Reader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.done {
		return false
	}
	n, bytes := 0, 0
	for n < r.maxRows && (r.maxBytes <= 0 || bytes < r.maxBytes) {
		if !r.rows.Next() {
			r.done = true
			if err := r.rows.Err(); err != nil {
				r.err = fmt.Errorf("read rows: %w", err)
			}
			break
		}
		if err := r.rows.Scan(r.dests...); err != nil {
			r.done, r.err = true, fmt.Errorf("scan row %d: %w", r.total+int64(n), err)
			break
		}
		for _, app := range r.appends {
			app()
		}
		if r.maxBytes > 0 {
			bytes += r.rowBytes
			for _, s := range r.sizes {
				bytes += s.codec.size(s.dest)
			}
		}
		n++
	}
	if r.err != nil || n == 0 {
		// Drop a partial batch: a failed read is not a short one.
		if n > 0 {
			r.bld.NewRecordBatch().Release()
		}
		return false
	}
	r.cur = r.bld.NewRecordBatch()
	r.total += int64(n)
	return true
}

// RecordBatch is the current batch, valid until the next call to Next.
func (r *Reader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record is RecordBatch.
//
// Deprecated: use RecordBatch.
func (r *Reader) Record() arrow.RecordBatch { return r.cur }

// Err is the error that ended reading, if any.
func (r *Reader) Err() error { return r.err }
