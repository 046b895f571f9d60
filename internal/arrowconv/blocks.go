package arrowconv

import (
	"fmt"
	"sync"
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
// whole decoded column to its Arrow builder at once (or copying its bytes
// where ClickHouse's layout is Arrow's), and splits a block into batches
// that keep to the same bounds as a Reader's. A goroutine reads and
// converts the next block while the caller handles the current one, so it
// holds at most three blocks in memory. Releasing it closes the blocks.
type BlockReader struct {
	refs     atomic.Int64
	src      Blocks
	schema   *arrow.Schema
	target   proto.Results
	cols     []column
	bld      *array.RecordBuilder
	mem      memory.Allocator
	reuse    *reuse // the columns' buffers; closed by Release
	maxRows  int
	maxBytes int
	block    arrow.RecordBatch // the converted block
	off      int64             // rows of block handed out already
	step     int64             // rows per batch of block
	cur      arrow.RecordBatch
	err      error
	total    int64
	// The producer goroutine converts blocks into ch; perr is its error,
	// read once ch is closed.
	ch   chan converted
	quit chan struct{}
	wg   sync.WaitGroup
	perr error
}

var _ array.RecordReader = (*BlockReader)(nil)

// Columnar reports whether NewBlockReader converts every type of chTypes.
func Columnar(chTypes []string) bool {
	for _, s := range chTypes {
		t, err := parseType(s)
		if err != nil {
			return false
		}
		if _, ok := blockColumn(t, &wire{mem: memory.DefaultAllocator}); !ok {
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
	r := &BlockReader{src: src, schema: schema, mem: mem, reuse: newReuse(mem), maxRows: batchRows, maxBytes: DefaultBatchBytes}
	w := &wire{mem: r.reuse}
	if wired, ok := src.(Wired); ok {
		w.src = wired.Wire()
	}
	for i, s := range chTypes {
		t, _ := parseType(s) // parsed by Schema already
		c, ok := blockColumn(t, w)
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

// SetMaxBatchBytes changes the byte bound of a batch (≤ 0: none); only
// before the first Next.
func (r *BlockReader) SetMaxBatchBytes(n int) { r.maxBytes = n }

// Retain adds a reference.
func (r *BlockReader) Retain() { r.refs.Add(1) }

// Release drops a reference; the last one stops the query, frees the
// batches and builders and closes the blocks.
func (r *BlockReader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.ch != nil {
		close(r.quit)
		_ = r.src.Close() // cuts a read in progress
		r.wg.Wait()
		for b := range r.ch {
			b.rec.Release()
		}
	}
	r.drop()
	r.bld.Release()
	_ = r.src.Close()
	for _, c := range r.cols {
		if c.wire != nil {
			c.wire.release()
		}
	}
	r.reuse.close()
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
// The first call starts reading: while the caller handles a batch, the
// next block is read and converted.
func (r *BlockReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.block == nil || r.off >= r.block.NumRows() {
		r.drop()
		if r.ch == nil {
			r.ch, r.quit = make(chan converted, 1), make(chan struct{})
			r.wg.Go(r.produce)
		}
		b, ok := <-r.ch
		if !ok {
			r.err = r.perr
			return false
		}
		r.block, r.step, r.off = b.rec, b.step, 0
	}
	end := min(r.off+r.step, r.block.NumRows())
	r.cur = r.block.NewSlice(r.off, end)
	r.total += end - r.off
	r.off = end
	return true
}

// converted is a converted block and the rows of each of its batches.
type converted struct {
	rec  arrow.RecordBatch
	step int64
}

// produce reads and converts blocks until the end, an error or Release.
func (r *BlockReader) produce() {
	defer close(r.ch)
	for {
		rec, step, err := r.convertSafe()
		if rec == nil {
			r.perr = err
			return
		}
		select {
		case r.ch <- converted{rec, step}:
		case <-r.quit:
			rec.Release()
			return
		}
	}
}

// convertSafe is convert with a panic of a column's decoder, on bytes no
// server should send, turned into the reader's error: it runs on the
// producer's goroutine, where a panic would end the process.
func (r *BlockReader) convertSafe() (rec arrow.RecordBatch, step int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			rec, step, err = nil, 0, fmt.Errorf("decode block: %v", p)
		}
	}()
	return r.convert()
}

// convert reads and converts the next block; nil at the end or on error.
func (r *BlockReader) convert() (arrow.RecordBatch, int64, error) {
	n := r.src.Next(r.target)
	if n == 0 {
		if err := r.src.Err(); err != nil {
			return nil, 0, fmt.Errorf("read blocks: %w", err)
		}
		return nil, 0, nil
	}
	arrs := make([]arrow.Array, len(r.cols))
	defer func() {
		for _, a := range arrs {
			if a != nil {
				a.Release()
			}
		}
	}()
	for i, c := range r.cols {
		if got := c.res.Rows(); got != n {
			return nil, 0, fmt.Errorf("block column %s has %d rows, want %d", r.schema.Field(i).Name, got, n)
		}
		arrs[i] = r.array(c, i)
	}
	rec := array.NewRecordBatch(r.schema, arrs, int64(n))
	// Batches of equal rows, as few as keep to both bounds.
	parts := (int64(n) + int64(r.maxRows) - 1) / int64(r.maxRows)
	if r.maxBytes > 0 {
		size := int64(0)
		for _, col := range rec.Columns() {
			size += dataSize(col.Data())
		}
		parts = max(parts, (size+int64(r.maxBytes)-1)/int64(r.maxBytes))
	}
	return rec, (int64(n) + parts - 1) / parts, nil
}

// array converts the decoded column c, the i-th: at once when it can,
// else through its builder.
func (r *BlockReader) array(c column, i int) arrow.Array {
	if c.direct != nil {
		if d := c.direct(r.mem, r.schema.Field(i).Type, nil); d != nil {
			defer d.Release()
			return array.MakeFromData(d)
		}
	}
	b := r.bld.Field(i)
	c.appendTo(b, nil)
	return b.NewArray()
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
