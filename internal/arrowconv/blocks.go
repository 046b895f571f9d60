package arrowconv

import (
	"fmt"
	"sync/atomic"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Blocks is the source of a BlockReader: the native blocks of a running
// query (chnative.Rows).
type Blocks interface {
	// Next decodes the next block that has rows into target and returns
	// its row count; 0 at the end or on error.
	Next(target proto.Result) int
	// Err is the error that ended the blocks, if any.
	Err() error
	// Close stops the query.
	Close() error
}

// BlockReader is an array.RecordReader over the native blocks of a running
// ClickHouse query. It converts each block column by column, appending a
// whole decoded column to its Arrow builder at once, and splits a block
// into batches that keep to the same bounds as a Reader's. It holds at most
// one block in memory. Releasing it closes the blocks.
type BlockReader struct {
	refs     atomic.Int64
	src      Blocks
	schema   *arrow.Schema
	target   proto.Results
	cols     []column
	bld      *array.RecordBuilder
	maxRows  int
	maxBytes int
	block    arrow.RecordBatch // the converted block
	off      int64             // rows of block handed out already
	step     int64             // rows per batch of block
	cur      arrow.RecordBatch
	err      error
	total    int64
}

var _ array.RecordReader = (*BlockReader)(nil)

// Columnar reports whether NewBlockReader converts every type of chTypes.
func Columnar(chTypes []string) bool {
	for _, s := range chTypes {
		t, err := parseType(s)
		if err != nil {
			return false
		}
		if _, ok := blockColumn(t); !ok {
			return false
		}
	}
	return true
}

// NewBlockReader returns a BlockReader of src, whose columns are named names
// and have ClickHouse types chTypes (as system.columns gives them). The
// batch bounds and mem are NewReader's. On error, src is left to the
// caller; otherwise Release closes it.
func NewBlockReader(src Blocks, names, chTypes []string, batchRows int, mem memory.Allocator) (*BlockReader, error) {
	schema, err := Schema(names, chTypes)
	if err != nil {
		return nil, err
	}
	if batchRows <= 0 {
		batchRows = DefaultBatchRows
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	r := &BlockReader{src: src, schema: schema, maxRows: batchRows, maxBytes: DefaultBatchBytes}
	for i, s := range chTypes {
		t, _ := parseType(s) // parsed by Schema already
		c, ok := blockColumn(t)
		if !ok {
			return nil, fmt.Errorf("column %s: %w %s in columnar reads", names[i], ErrUnsupportedType, s)
		}
		r.cols = append(r.cols, c)
		r.target = append(r.target, proto.ResultColumn{Name: names[i], Data: c.res})
	}
	r.bld = array.NewRecordBuilder(mem, schema)
	r.refs.Store(1)
	return r, nil
}

// SetMaxBatchBytes changes the byte bound of a batch (≤ 0: none).
func (r *BlockReader) SetMaxBatchBytes(n int) { r.maxBytes = n }

// Retain adds a reference.
func (r *BlockReader) Retain() { r.refs.Add(1) }

// Release drops a reference; the last one frees the batches and builders
// and closes the blocks.
func (r *BlockReader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	r.drop()
	r.bld.Release()
	_ = r.src.Close()
}

func (r *BlockReader) drop() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.block != nil {
		r.block.Release()
		r.block = nil
	}
}

// Schema is the schema of every batch.
func (r *BlockReader) Schema() *arrow.Schema { return r.schema }

// Rows is the number of rows read so far.
func (r *BlockReader) Rows() int64 { return r.total }

// Next reads the next batch; false at the end of the blocks or on error
// (see Err). The previous batch is released unless the caller retained it.
func (r *BlockReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.block == nil || r.off >= r.block.NumRows() {
		if !r.convert() {
			return false
		}
	}
	end := min(r.off+r.step, r.block.NumRows())
	r.cur = r.block.NewSlice(r.off, end)
	r.total += end - r.off
	r.off = end
	return true
}

// convert reads and converts the next block; false at the end or on error.
func (r *BlockReader) convert() bool {
	r.drop()
	if r.err != nil {
		return false
	}
	n := r.src.Next(r.target)
	if n == 0 {
		if err := r.src.Err(); err != nil {
			r.err = fmt.Errorf("read blocks: %w", err)
		}
		return false
	}
	for i, c := range r.cols {
		if got := c.res.Rows(); got != n {
			r.err = fmt.Errorf("block column %s has %d rows, want %d", r.schema.Field(i).Name, got, n)
			return false
		}
		c.appendTo(r.bld.Field(i), nil)
	}
	r.block = r.bld.NewRecordBatch()
	r.off = 0
	// Batches of equal rows, as few as keep to both bounds.
	parts := (int64(n) + int64(r.maxRows) - 1) / int64(r.maxRows)
	if r.maxBytes > 0 {
		size := int64(0)
		for _, col := range r.block.Columns() {
			size += dataSize(col.Data())
		}
		parts = max(parts, (size+int64(r.maxBytes)-1)/int64(r.maxBytes))
	}
	r.step = (int64(n) + parts - 1) / parts
	return true
}

// dataSize is the bytes of d's buffers and its children's.
func dataSize(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataSize(c)
	}
	return n
}

// RecordBatch is the current batch, valid until the next call to Next.
func (r *BlockReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record is RecordBatch.
//
// Deprecated: use RecordBatch.
func (r *BlockReader) Record() arrow.RecordBatch { return r.cur }

// Err is the error that ended reading, if any.
func (r *BlockReader) Err() error { return r.err }
